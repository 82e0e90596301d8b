import type { FastifyReply, FastifyRequest } from 'fastify';
import { parseDigest } from '../../lib/digest.js';
import { parseJson } from '../../lib/decode.js';
import { AppError, statusOf } from '../../lib/errors.js';
import { resolveDoc } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import { allLeaves, isNotFound } from '../../repos/virtual.js';
import type { RepoDef } from '../../storage/meta/types.js';
import { MT } from './manifests.js';
import { keys, pageSize, splitKey, type Target } from './names.js';
import { upstreamAuth, upstreamUrl } from './remote-auth.js';

/** n/last pagination over a sorted list, with distribution's `Link: <…>; rel="next"`. */
function page(reply: FastifyReply, all: string[], q: Record<string, string | undefined>, url: string): string[] {
  const n = pageSize(q.n);
  const after = q.last ? all.filter((x) => x > q.last!) : all;
  const out = after.slice(0, n);
  if (q.n !== undefined && after.length > n && out.length > 0) {
    reply.header('link', `<${url}?n=${n}&last=${encodeURIComponent(out[out.length - 1])}>; rel="next"`);
  }
  return out;
}

/** Tag names of an image in any kind of repo (virtual: union of members). */
async function tagNames(svc: Services, repo: RepoDef, image: string): Promise<string[]> {
  const { doc } = await resolveDoc<string[]>(svc, repo, {
    ref: {
      path: `${image}/_tagslist`,
      accept: 'application/json',
      rejectHtml: false,
      locate: (r) => `${upstreamUrl(svc, r, image, 'manifests', 'x').replace(/manifests\/x$/, 'tags/list')}?n=10000`,
      upstreamHeaders: (r) => upstreamAuth(svc, r, image),
    },
    async local(r) {
      const tags: string[] = [];
      for await (const f of svc.meta.files.list(r.name, keys.tags(image))) tags.push(f.path.slice(keys.tags(image).length));
      if (tags.length > 0) return tags;
      // An image whose manifests were all deleted still has its layer links (until gc): known, no tags.
      for (const prefix of [keys.manifests(image), keys.layers(image)]) {
        for await (const _ of svc.meta.files.list(r.name, prefix)) return [];
      }
      return null;
    },
    parseUpstream(_r, body) {
      const tags = (parseJson(body, 'UPSTREAM_FAILED', 'upstream tag list is not JSON') as { tags?: unknown } | null)?.tags;
      return Array.isArray(tags) ? tags.filter((t): t is string => typeof t === 'string') : [];
    },
    merge: (_r, parts) => [...new Set(parts.flatMap((p) => p.doc))],
  });
  return [...new Set(doc)].sort();
}

export async function listTags(req: FastifyRequest, reply: FastifyReply, svc: Services, t: Target) {
  let tags: string[];
  try {
    tags = await tagNames(svc, t.repo, t.image);
  } catch (err) {
    if (statusOf(err) === 404) throw new AppError('NAME_UNKNOWN', `repository name not known to registry: ${t.name}`);
    throw err;
  }
  const out = page(reply, tags, req.query as Record<string, string | undefined>, `/v2/${t.name}/tags/list`);
  return reply.header('content-type', 'application/json').send({ name: t.name, tags: out });
}

/** `_catalog`: every `REPO/IMAGE` with a manifest stored in a docker repo of `repos` (those the caller may see; virtual ones store none). */
export async function catalog(req: FastifyRequest, reply: FastifyReply, svc: Services, repos: RepoDef[]) {
  const names = new Set<string>();
  for (const r of repos) {
    if (r.format !== 'docker') continue;
    for await (const f of svc.meta.files.list(r.name)) {
      const k = splitKey(f.path);
      if (k && k.kind === '_manifests') names.add(`${r.name}/${k.image}`);
    }
  }
  const out = page(reply, [...names].sort(), req.query as Record<string, string | undefined>, '/v2/_catalog');
  return reply.header('content-type', 'application/json').send({ repositories: out });
}

interface Referrer { mediaType: string; digest: string; size: number; artifactType?: string; annotations?: Record<string, string> }

/**
 * The manifests of `image` whose subject is `subject`, stored in the repo or (virtual) its leaves;
 * first leaf wins per digest. None is an empty list (a virtual repo without members too); a store
 * that fails is the error it is, never an empty list that says "no signatures".
 */
async function referrersOf(svc: Services, repo: RepoDef, image: string, subject: string): Promise<Referrer[]> {
  const parts = await allLeaves(svc, repo, 0, (leaf) => storedReferrers(svc, leaf, image, subject)).catch((err: unknown) => (isNotFound(err) ? [] : Promise.reject(err)));
  const seen = new Map<string, Referrer>();
  for (const p of parts) for (const d of p.value) if (!seen.has(d.digest)) seen.set(d.digest, d);
  return [...seen.values()];
}

async function storedReferrers(svc: Services, repo: RepoDef, image: string, subject: string): Promise<Referrer[]> {
  const out: Referrer[] = [];
  for await (const f of svc.meta.files.list(repo.name, keys.manifests(image))) {
    if (f.meta?.subject !== subject) continue;
    out.push({
      mediaType: f.contentType ?? MT.ociManifest, digest: f.digest, size: f.size,
      ...(f.meta.artifactType ? { artifactType: f.meta.artifactType as string } : {}),
      ...(f.meta.annotations ? { annotations: f.meta.annotations as Record<string, string> } : {}),
    });
  }
  return out;
}

/** OCI 1.1 referrers API: an index of the manifests whose `subject` is the digest (optionally by artifactType). */
export async function referrers(req: FastifyRequest, reply: FastifyReply, svc: Services, t: Target, rawDigest: string) {
  const digest = parseDigest(rawDigest);
  let list = await referrersOf(svc, t.repo, t.image, digest);
  const want = (req.query as Record<string, string | undefined>).artifactType;
  if (want) {
    list = list.filter((d) => d.artifactType === want);
    reply.header('oci-filters-applied', 'artifactType');
  }
  return reply.header('content-type', MT.ociIndex).send(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: list })));
}
