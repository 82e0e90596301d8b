import type { FastifyRequest } from 'fastify';
import { pipeline } from 'node:stream';
import { AppError } from '../../lib/errors.js';
import { collect } from '../../lib/streams.js';
import { localFile, writeLocalRow, writeTarget } from '../../repos/local.js';
import { byKind, resolveFile } from '../../repos/resolve.js';
import type { Served } from '../../repos/types.js';
import { MAX_DEPTH } from '../../repos/virtual.js';
import type { Services } from '../../repos/services.js';
import { sendDocument, sendServed } from '../../server/send.js';
import { ingestBuffer, ingestStream } from '../../storage/ingest.js';
import type { FileRec, RepoDef } from '../../storage/meta/types.js';
import type { FormatHandler, GcContext } from '../types.js';
import { RpmHeaderTap } from './header.js';
import { remotePackage, remoteRepodataFile, remoteRepomd, repomdChecksums } from './remote.js';
import { RPM_OPTIONS } from './options.js';
import { localRepodata, REPOMD_PATH, XML_TYPE } from './repodata.js';
import { PGP_KEY_TYPE, PGP_TYPE, repoKey, signBytes } from '../../lib/pgp.js';
import { ASC_PATH, KEY_PATH, signaturePath, signsRepomd } from './sign.js';
import { virtualLists, virtualRepomd } from './virtual.js';
import { removeFile } from '../../repos/writes.js';

const RPM_TYPE = 'application/x-rpm';
/** Packages: `.rpm` at any path outside repodata/. */
const PACKAGE_RE = /^(?!repodata\/).+\.rpm$/;
const isPackage = (path: string) => PACKAGE_RE.test(path);

/**
 * yum/dnf repositories under /REPO/ (the baseurl): packages at any path, and `repodata/`, which
 * a local repo derives from the headers parsed at upload and a virtual one from its members'
 * repodata (repomd.xml switched last in both).
 */
export const rpm: FormatHandler = {
  name: 'rpm',
  options: RPM_OPTIONS,

  routes: [
    {
      method: 'GET', path: /^.+$/, action: 'read',
      async handle({ req, reply, ctx, svc, path }) {
        const contentType = isPackage(path) ? RPM_TYPE : path.endsWith('.xml') ? XML_TYPE : undefined;
        // Local and virtual repos sign their own repodata; a remote one serves its upstream's key and signature.
        const own = async (repo: RepoDef, current: (r: RepoDef) => Promise<FileRec>) => {
          if (path === KEY_PATH) {
            const key = await repoKey(repo);
            if (!key) throw new AppError('NOT_FOUND', `${repo.name} has no gpg key`);
            return sendDocument(req, reply, { source: 'local', servedBy: repo.name }, key.publicArmored, PGP_KEY_TYPE);
          }
          if (path === ASC_PATH) return sendServed(req, reply, await repomdSignature(svc, repo, current), svc, { contentType: PGP_TYPE });
          return sendServed(req, reply, await rpmFile(svc, repo, path), svc, { contentType });
        };
        return byKind<Promise<unknown>>(ctx.repo, {
          async remote(repo) {
            if (path !== REPOMD_PATH) return sendServed(req, reply, await rpmFile(svc, repo, path), svc, { contentType });
            const { served, body } = await remoteRepomd(svc, repo);
            return sendDocument(req, reply, served, body, XML_TYPE);
          },
          local: (repo) => own(repo, (r) => svc.derived.current(svc, r, localRepodata)),
          virtual: (repo) => own(repo, (r) => virtualRepomd(svc, r)),
        });
      },
    },
    {
      method: 'PUT', path: PACKAGE_RE, action: 'write',
      async handle({ req, reply, ctx, svc, path }) {
        const target = await writeTarget(svc, ctx.repo);
        await repoKey(target); // a key that cannot be used fails the write before anything changes
        return reply.code(201).send(await savePackage(req, svc, target, path));
      },
    },
    {
      method: 'DELETE', path: PACKAGE_RE, action: 'delete',
      async handle({ reply, ctx, svc, path }) {
        const target = await writeTarget(svc, ctx.repo);
        if (!(await svc.meta.files.get(target.name, path))) throw new AppError('NOT_FOUND', `${path} not found in ${target.name}`);
        await repoKey(target);
        await removeFile(svc, target.name, path);
        await svc.derived.refresh(svc, target, localRepodata);
        return reply.code(204).send();
      },
    },
    {
      method: ['PUT', 'DELETE'], path: /^.+$/, action: ({ req }) => (req.method === 'DELETE' ? 'delete' : 'write'),
      async handle({ path }) {
        throw new AppError('BAD_REQUEST', `only .rpm packages outside repodata/ can be written (got ${path})`);
      },
    },
  ],

  gc: { kinds: ['local', 'virtual'], run: rpmGc },
};

/**
 * Any file of an rpm repo, by kind. Local: its row (repomd.xml derived first if the repo never had
 * one). Remote: verified as remote.ts describes. Virtual: its own derived repodata, and packages
 * at `<member>/<path>` (the locations its primary.xml gives) from that member.
 */
function rpmFile(svc: Services, repo: RepoDef, path: string, depth = 0): Promise<Served> {
  return byKind(repo, {
    async remote(r) {
      if (path.endsWith('.rpm')) return remotePackage(svc, r, path);
      if (path.startsWith('repodata/repomd.xml')) return resolveFile(svc, r, { path, mutable: true }); // repomd.xml and its .asc/.key
      return path.startsWith('repodata/') ? remoteRepodataFile(svc, r, path) : resolveFile(svc, r, { path });
    },
    async local(r) {
      if (path === REPOMD_PATH) await svc.derived.current(svc, r, localRepodata);
      return localFile(svc, r, { path });
    },
    async virtual(r) {
      if (path.startsWith('repodata/')) {
        if (path === REPOMD_PATH) await virtualRepomd(svc, r);
        return localFile(svc, r, { path });
      }
      if (depth > MAX_DEPTH) throw new AppError('BAD_REQUEST', `virtual repositories nest deeper than ${MAX_DEPTH}`);
      const slash = path.indexOf('/');
      const name = path.slice(0, slash);
      const member = slash > 0 && r.members?.includes(name) ? await svc.repos.get(name) : null;
      if (!member || (depth === 0 && path.endsWith('.rpm') && !(await virtualLists(svc, r, path)))) throw new AppError('NOT_FOUND', `${path} not found in ${r.name}`);
      return rpmFile(svc, member, path.slice(slash + 1), depth + 1);
    },
  });
}

/**
 * The signature of the current repomd.xml of a local or virtual repo: the row named by its digest
 * and the key, so it always matches the repomd.xml served at the same moment. Normally stored with
 * the generation; signed here when the key was set (or changed) after the last one.
 */
async function repomdSignature(svc: Services, repo: RepoDef, current: (r: RepoDef) => Promise<FileRec>): Promise<Served> {
  const key = await repoKey(repo);
  if (!key) throw new AppError('NOT_FOUND', `${repo.name} has no gpg key, so ${ASC_PATH} is not signed`);
  const repomd = await current(repo);
  const path = signaturePath(repomd.digest, key.fingerprint);
  if (!(await svc.meta.files.get(repo.name, path))) {
    const asc = await signBytes(key, await collect(await svc.blob.read(repomd.digest)));
    await ingestBuffer(svc, asc, (m, w) => writeLocalRow(m, repo, path, w.digest, w.size, { contentType: PGP_TYPE, meta: { kind: 'derived' } }));
  }
  return localFile(svc, repo, { path });
}

/**
 * Streams a package into the blob store while its header is parsed on the way: an upload that is
 * not an RPM fails before anything is published. The parsed fields go into the row, so repodata
 * is regenerated from rows alone.
 */
async function savePackage(req: FastifyRequest, svc: Services, repo: RepoDef, path: string) {
  if (await svc.meta.files.get(repo.name, path)) throw new AppError('CONFLICT', `${path} already exists in ${repo.name} and cannot be overwritten`);
  const tap = new RpmHeaderTap();
  const src = pipeline(req.raw, tap, () => {});
  const w = await ingestStream(svc, src, { maxSize: svc.config.uploads.max_size || undefined }, (mt, s) =>
    writeLocalRow(mt, repo, path, s.digest, s.size, { contentType: RPM_TYPE, meta: { kind: 'rpm', rpm: tap.meta }, immutable: true }));
  await svc.derived.refresh(svc, repo, localRepodata);
  const p = tap.meta!;
  return { repo: repo.name, path, name: p.name, epoch: p.epoch, version: p.version, release: p.release, arch: p.arch, sha256: w.digest.slice(7), size: w.size };
}

/**
 * Old repodata generations stay served (a client that read the previous repomd.xml still finds
 * what it names) until gc: then rows that the current repomd.xml does not name and that are older
 * than gc.grace go, and the core sweep reclaims their blobs.
 */
async function rpmGc(ctx: GcContext, repos: RepoDef[]): Promise<void> {
  const { svc } = ctx;
  const cutoff = ctx.now - svc.config.gc.grace;
  for (const repo of repos) {
    const current = await svc.meta.files.get(repo.name, REPOMD_PATH);
    if (!current) continue;
    const keep = repomdChecksums((await collect(await svc.blob.read(current.digest))).toString('utf8'));
    for await (const f of svc.meta.files.list(repo.name, 'repodata/')) {
      if (f.path === REPOMD_PATH || keep.has(f.path) || signsRepomd(f.path, current.digest) || f.fetchedAt >= cutoff) continue;
      ctx.report({ action: 'delete-row', repo: repo.name, path: f.path, bytes: f.size });
      if (!ctx.dryRun) await removeFile(svc, repo.name, f.path);
    }
  }
}
