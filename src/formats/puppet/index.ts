import { Readable } from 'node:stream';
import { AppError } from '../../lib/errors.js';
import { boundaryOf, parseMultipart } from '../../lib/multipart.js';
import { recordLocalFile, writeTarget } from '../../repos/local.js';
import { listingLeaf } from '../../repos/listed.js';
import { resolveDoc, resolveDocOr, resolveFile } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import type { Served } from '../../repos/types.js';
import { sendDocument, sendServed, type DocOrigin } from '../../server/send.js';
import { ingestStream } from '../../storage/ingest.js';
import type { RepoDef } from '../../storage/meta/types.js';
import type { FormatHandler } from '../types.js';
import {
  JSON_TYPE, moduleSource, releaseSource, renderModule, renderRelease, renderReleasePage, tarballPath, upstreamUrl,
  type Release,
} from './docs.js';
import { removeFile } from '../../repos/writes.js';
import { normalizeName, parseSlug, readModuleMetadata, releaseSlug } from './metadata.js';

const TARBALL_TYPE = 'application/gzip';

const json = (body: unknown) => Buffer.from(JSON.stringify(body));

/**
 * Puppet Forge API v3 under /REPO/ (`puppet module install --module_repository http://HOST/REPO`,
 * r10k's `forge` setting): module documents, paged release lists with their metadata (puppet
 * resolves dependencies from them), single releases and tarballs. Local repos take releases by
 * `POST v3/releases` as the publishing tools send them; remote repos proxy a Forge, verifying
 * tarballs against the listed checksums; virtual repos merge their members' release lists.
 */
export const puppet: FormatHandler = {
  name: 'puppet',
  // Forge clients print `message`; the rest of the contract reads `error`.
  errorBody(code, message) {
    return { message, errors: [message], error: { code, message } };
  },
  routes: [
    {
      method: 'GET', path: /^v3\/modules\/([^/]+)$/, action: 'read',
      async handle({ req, reply, svc, ctx, params }) {
        const name = normalizeName(params[0]);
        if (!name) throw new AppError('NOT_FOUND', `module ${params[0]} not found`);
        const served = await resolveDoc(svc, ctx.repo, moduleSource(svc, name));
        if (served.doc.releases.length === 0) throw new AppError('NOT_FOUND', `module ${name} not found`);
        return sendDocument(req, reply, served, json(renderModule(served.doc)), JSON_TYPE);
      },
    },
    {
      method: 'GET', path: /^v3\/releases$/, action: 'read',
      subject: ({ query }) => query.get('module') ?? undefined,
      async handle({ req, reply, svc, ctx, query }) {
        const raw = query.get('module');
        if (!raw) throw new AppError('BAD_REQUEST', 'the module parameter is required');
        const name = normalizeName(raw);
        if (!name) throw new AppError('BAD_REQUEST', `module ${JSON.stringify(raw)} is not owner-name`);
        // The Forge answers an unknown module with an empty list, which puppet reports as such.
        const served = await resolveDocOr(svc, ctx.repo, moduleSource(svc, name), { name, releases: [] });
        return sendDocument(req, reply, served, json(renderReleasePage(served.doc, query)), JSON_TYPE);
      },
    },
    {
      method: 'GET', path: /^v3\/releases\/([^/]+)$/, action: 'read',
      async handle({ req, reply, svc, ctx, params }) {
        const id = slugOf(params[0]);
        const { served, release } = await findRelease(svc, ctx.repo, id.name, id.version);
        return sendDocument(req, reply, served, json(renderRelease(release)), JSON_TYPE);
      },
    },
    {
      method: 'GET', path: /^v3\/files\/([^/]+)\.tar\.gz$/, action: 'read',
      async handle({ req, reply, svc, ctx, params }) {
        const id = slugOf(params[0]);
        return sendServed(req, reply, await tarball(svc, ctx.repo, id.name, id.version), svc, { contentType: TARBALL_TYPE });
      },
    },
    {
      method: 'POST', path: /^v3\/releases$/, action: 'write',
      async handle({ req, reply, svc, ctx }) {
        const target = await writeTarget(svc, ctx.repo);
        const ct = req.headers['content-type'] ?? '';
        if (!/^multipart\//i.test(ct)) return reply.code(201).send(await saveRelease(svc, target, req.raw));
        let saved: Saved | undefined;
        for await (const part of parseMultipart(req.raw, boundaryOf(ct))) {
          if (part.name !== 'file') continue;
          if (saved) throw new AppError('BAD_REQUEST', 'more than one file part');
          saved = await saveRelease(svc, target, Readable.from(part.body));
        }
        if (!saved) throw new AppError('BAD_REQUEST', 'no module tarball in the upload (expected a "file" part)');
        return reply.code(201).send(saved);
      },
    },
    {
      method: 'DELETE', path: /^v3\/releases\/([^/]+)$/, action: 'delete',
      async handle({ reply, svc, ctx, params }) {
        const id = slugOf(params[0]);
        const target = await writeTarget(svc, ctx.repo);
        const path = tarballPath(id.name, id.version);
        if (!(await svc.meta.files.get(target.name, path))) throw new AppError('NOT_FOUND', `release ${params[0]} not found`);
        await removeFile(svc, target.name, path);
        return reply.code(204).send();
      },
    },
  ],
};

function slugOf(raw: string): { name: string; version: string } {
  const id = parseSlug(raw);
  if (!id) throw new AppError('NOT_FOUND', `release ${raw} not found`);
  return id;
}

/** The local or remote repo that serves a release (repos/listed.ts). */
function leafFor(svc: Services, repo: RepoDef, name: string, version: string): Promise<RepoDef> {
  return listingLeaf(svc, repo, moduleSource(svc, name), (doc) => doc.releases.find((r) => r.version === version)?.member, `release ${releaseSlug(name, version)}`);
}

async function findRelease(svc: Services, repo: RepoDef, name: string, version: string): Promise<{ served: DocOrigin; release: Release }> {
  const leaf = await leafFor(svc, repo, name, version);
  const served = await resolveDoc(svc, leaf, releaseSource(svc, name, version));
  // Through a virtual repo the answer is the virtual repo's document, built from that member's.
  return { served: leaf === repo ? served : { ...served, servedBy: repo.name, parts: [{ repo: leaf.name, source: served.source }] }, release: served.doc };
}

/** A release tarball: stored (local), or fetched from where the upstream's release points, verified against its checksum. */
async function tarball(svc: Services, repo: RepoDef, name: string, version: string): Promise<Served> {
  const leaf = await leafFor(svc, repo, name, version);
  const { doc: release } = await resolveDoc(svc, leaf, releaseSource(svc, name, version));
  return resolveFile(svc, leaf, {
    path: tarballPath(name, version), rejectHtml: true,
    locate: (r) => (release.upstreamUri ? upstreamUrl(svc, r, release.upstreamUri) : null),
    expect: {
      digest: release.sha256 ? `sha256:${release.sha256}` : undefined,
      hashes: !release.sha256 && release.md5 ? { md5: release.md5 } : undefined,
      size: release.size,
    },
  });
}

interface Saved {
  uri: string;
  slug: string;
  file_sha256: string;
}

/**
 * Stores a release: the tarball streamed into the blob store, its metadata.json read back (bounded)
 * and validated, then the row written; the same version twice is 409. A refused tarball leaves an
 * unreferenced blob that gc reaps after its grace period.
 */
async function saveRelease(svc: Services, target: RepoDef, src: Readable): Promise<Saved> {
  const w = await ingestStream(svc, src, { maxSize: svc.config.uploads.max_size || undefined });
  const metadata = await readModuleMetadata(await svc.blob.read(w.digest), 'module tarball');
  const slug = releaseSlug(metadata.name, metadata.version);
  await recordLocalFile(svc, target, tarballPath(metadata.name, metadata.version), w.digest, w.size, {
    contentType: TARBALL_TYPE, immutable: true, meta: { kind: 'release', module: metadata.name, metadata },
  });
  return { uri: `/v3/releases/${slug}`, slug, file_sha256: w.digest.slice(7) };
}
