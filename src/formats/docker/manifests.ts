import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { isDigest, parseDigest, sha256, type Digest } from '../../lib/digest.js';
import { parseJson } from '../../lib/decode.js';
import { AppError, isAppError, statusOf } from '../../lib/errors.js';
import { putLocalFile, recordLocalFile } from '../../repos/local.js';
import { ingestBuffer } from '../../storage/ingest.js';
import { readCapped } from '../../repos/resolve.js';
import { remoteFile } from '../../repos/remote.js';
import type { Services } from '../../repos/services.js';
import type { FileRef, Served } from '../../repos/types.js';
import { firstMember } from '../../repos/virtual.js';
import { sendServed, etagOf } from '../../server/send.js';
import type { FileRec, RepoDef } from '../../storage/meta/types.js';
import { isTag, keys, validateTag, type Target } from './names.js';
import { upstreamAuth, upstreamImage, upstreamUrl } from './remote-auth.js';
import { collect, collectRequest } from '../../lib/streams.js';

export const MT = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
} as const;
const SUPPORTED = new Set<string>(Object.values(MT));
const INDEXES = new Set<string>([MT.dockerList, MT.ociIndex]);
/** What we ask upstreams for: every type we can store. */
export const ACCEPT_ALL = [MT.ociIndex, MT.dockerList, MT.ociManifest, MT.dockerManifest].join(', ');

interface Descriptor { mediaType?: string; digest?: string; size?: number; urls?: string[]; artifactType?: string; annotations?: Record<string, string>; platform?: { os?: string; architecture?: string; variant?: string } }
interface ManifestDoc {
  schemaVersion?: number;
  mediaType?: string;
  artifactType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

function baseType(ct: string | undefined): string {
  return (ct ?? '').split(';')[0].trim().toLowerCase();
}

// ---------------------------------------------------------------- reads

/** A manifest by digest or tag, from any kind of repo. */
export async function findManifest(svc: Services, repo: RepoDef, image: string, reference: string, ns?: string, depth = 0): Promise<Served> {
  try {
    switch (repo.kind) {
      case 'local': {
        const digest = isDigest(reference) ? reference : (await tagRow(svc, repo, image, reference))?.digest;
        const rec = digest && (await svc.meta.files.get(repo.name, keys.manifest(image, digest)));
        if (!rec) throw new AppError('MANIFEST_UNKNOWN', `manifest unknown: ${image}:${reference}`);
        return { rec, source: 'local', servedBy: repo.name, size: rec.size };
      }
      case 'remote':
        return await remoteManifest(svc, repo, image, reference);
      case 'virtual': {
        const members = ns ? await preferNs(svc, repo, ns) : repo;
        return await firstMember(svc, members, depth + 1, (m) => findManifest(svc, m, image, reference, ns, depth + 1));
      }
    }
  } catch (err) {
    if (statusOf(err) === 404 && !(isAppError(err) && err.code === 'MANIFEST_UNKNOWN')) {
      throw new AppError('MANIFEST_UNKNOWN', `manifest unknown: ${image}:${reference}`);
    }
    throw err;
  }
}

/**
 * containerd's `?ns=registry-1.docker.io`: the members that may answer are the
 * local ones and the remote ones whose upstream is that registry (Docker Hub aliases count as one).
 */
export async function preferNs(svc: Services, repo: RepoDef, ns: string): Promise<RepoDef> {
  const hub = (h: string) => (['docker.io', 'registry-1.docker.io', 'index.docker.io'].includes(h) ? 'docker.io' : h);
  const want = hub(ns.toLowerCase());
  const keep: string[] = [];
  for (const name of repo.members ?? []) {
    const m = await svc.repos.get(name);
    if (!m) continue;
    if (m.kind === 'remote' && hub(new URL(m.upstream!).host.toLowerCase()) !== want && hub(new URL(m.upstream!).hostname.toLowerCase()) !== want) continue;
    keep.push(name);
  }
  return { ...repo, members: keep };
}

async function tagRow(svc: Services, repo: RepoDef, image: string, tag: string): Promise<FileRec | null> {
  validateTag(tag);
  return svc.meta.files.get(repo.name, keys.tag(image, tag));
}

function manifestRef(svc: Services, image: string, digest: Digest): FileRef {
  return {
    path: keys.manifest(image, digest),
    expect: { digest },
    accept: ACCEPT_ALL,
    rejectHtml: false,
    locate: (r) => upstreamUrl(svc, r, image, 'manifests', digest),
    upstreamHeaders: (r) => upstreamAuth(svc, r, image),
  };
}

/**
 * Remote: a manifest by digest is cached forever (verified first). A tag is a
 * row pointing at a digest; after metadata_ttl it is revalidated with a HEAD
 * (which does not count against Docker Hub's pull limit); if the upstream is
 * down, the cached tag still answers.
 */
async function remoteManifest(svc: Services, repo: RepoDef, image: string, reference: string): Promise<Served> {
  if (isDigest(reference)) return remoteFile(svc, repo, manifestRef(svc, image, reference));
  const tag = reference;
  const cached = await tagRow(svc, repo, image, tag);
  if (cached && Date.now() - cached.fetchedAt < svc.repos.metadataTtl(repo)) {
    return remoteFile(svc, repo, manifestRef(svc, image, cached.digest));
  }
  let digest: Digest;
  try {
    digest = await svc.coord.singleFlight(`docker-tag:${repo.name}:${image}:${tag}`, () => revalidateTag(svc, repo, image, tag, cached));
  } catch (err) {
    if (cached && statusOf(err) >= 500) {
      svc.log.warn({ repo: repo.name, image, tag, err: (err as Error).message }, 'upstream failed; serving cached tag');
      const served = await remoteFile(svc, repo, manifestRef(svc, image, cached.digest));
      return { ...served, staleAge: Math.floor((Date.now() - cached.fetchedAt) / 1000) };
    }
    throw err;
  }
  return remoteFile(svc, repo, manifestRef(svc, image, digest));
}

async function revalidateTag(svc: Services, repo: RepoDef, image: string, tag: string, cached: FileRec | null): Promise<Digest> {
  const settings = svc.repos.upstreamSettings(repo);
  const url = upstreamUrl(svc, repo, image, 'manifests', tag);
  const headers = await upstreamAuth(svc, repo, image);
  const head = await svc.upstream.get(settings, url, { method: 'HEAD', accept: ACCEPT_ALL, headers });
  let digest = head.headers['docker-content-digest'];
  let size = Number(head.headers['content-length'] ?? -1);
  if (!isDigest(digest)) {
    // An upstream that does not say the digest on HEAD: GET it and hash it ourselves.
    const r = await svc.upstream.get(settings, url, { accept: ACCEPT_ALL, headers });
    const body = await collect(r.body!, {
      max: svc.config.limits.metadata_body,
      tooLarge: () => new AppError('UPSTREAM_FAILED', 'upstream manifest is too large'),
    });
    digest = sha256(body);
    size = body.length;
    const now = Date.now();
    const rec: FileRec = { repo: repo.name, path: keys.manifest(image, digest), digest: digest as Digest, size, contentType: baseType(r.headers['content-type']) || undefined, source: 'remote', fetchedAt: now, lastAccess: now };
    await ingestBuffer(svc, body, (m) => m.files.put(rec));
  }
  const now = Date.now();
  await svc.meta.files.put(cached && cached.digest === digest
    ? { ...cached, fetchedAt: now }
    : { repo: repo.name, path: keys.tag(image, tag), digest: digest as Digest, size, source: 'remote', fetchedAt: now, lastAccess: now, meta: { upstream: upstreamImage(repo, image) } });
  return digest as Digest;
}

/**
 * Content negotiation as distribution does it: a client that accepts image
 * manifests but no index type gets the linux/amd64 entry of a stored index;
 * any other Accept gets the stored type.
 */
function wantsPlatformManifest(accept: string | undefined, stored: string | undefined): boolean {
  if (!accept || !stored || !INDEXES.has(stored)) return false;
  const types = accept.split(',').map((a) => baseType(a));
  if (types.some((a) => INDEXES.has(a) || a === '*/*' || a === 'application/*')) return false;
  return types.some((a) => a === MT.dockerManifest || a === MT.ociManifest);
}

async function platformManifest(svc: Services, t: Target, index: Served): Promise<Served> {
  const doc = parseJson(await readCapped(svc, index), 'UNKNOWN', 'manifest index is not valid JSON') as ManifestDoc;
  const entry = doc.manifests?.find((m) => m.platform?.os === 'linux' && m.platform?.architecture === 'amd64');
  const digest = entry?.digest && isDigest(entry.digest) ? entry.digest : index.rec.digest; // none: the index itself, from the store now
  return findManifest(svc, t.repo, t.image, digest, t.ns);
}

export async function getManifest(req: FastifyRequest, reply: FastifyReply, svc: Services, t: Target, reference: string) {
  // Not a digest and not a tag: no such manifest (the OCI conformance suite wants 404, not TAG_INVALID).
  if (!isDigest(reference) && !isTag(reference)) throw new AppError('MANIFEST_UNKNOWN', `manifest unknown: ${t.image}:${reference.slice(0, 200)}`);
  let served = await findManifest(svc, t.repo, t.image, reference, t.ns);
  if (!isDigest(reference) && wantsPlatformManifest(req.headers.accept, served.rec.contentType)) {
    served = await platformManifest(svc, t, served);
  }
  const digest = served.rec.digest;
  const headers = { 'docker-content-digest': digest };
  if (served.body) {
    // First fetch through a remote: small, so take it whole, then answer like a stored one.
    const body = await readCapped(svc, served);
    reply.header('x-artifact-source', served.source).header('x-artifact-repo', served.servedBy)
      .header('content-type', served.rec.contentType ?? MT.dockerManifest).header('docker-content-digest', digest)
      .header('etag', etagOf(digest)).header('content-length', String(body.length));
    return reply.send(req.method === 'HEAD' ? undefined : body);
  }
  return sendServed(req, reply, served, svc, { contentType: served.rec.contentType ?? MT.dockerManifest, headers });
}

// ---------------------------------------------------------------- writes

/** PUT /v2/<name>/manifests/<reference>: validate, store by digest, move the tag. */
export async function putManifest(req: FastifyRequest, reply: FastifyReply, svc: Services, t: Target, target: RepoDef, reference: string) {
  const body = await collectRequest(req.raw, svc.config.limits.metadata_body, 'manifest', reply.raw);
  const doc = parseJson(body, 'MANIFEST_INVALID', 'manifest invalid: not JSON') as ManifestDoc;
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new AppError('MANIFEST_INVALID', 'manifest invalid: not an object');
  const mediaType = manifestType(doc, baseType(req.headers['content-type']));
  if (doc.schemaVersion !== 2) throw new AppError('MANIFEST_INVALID', 'manifest invalid: schemaVersion must be 2');
  const digest = sha256(body);
  if (isDigest(reference)) {
    if (reference !== digest) throw new AppError('DIGEST_INVALID', `manifest digest ${digest} does not match ${reference}`);
  } else validateTag(reference);
  await checkReferences(svc, target, t, mediaType, doc);

  const meta: Record<string, unknown> = {};
  if (doc.subject?.digest && isDigest(doc.subject.digest)) meta.subject = doc.subject.digest;
  const artifactType = doc.artifactType ?? (INDEXES.has(mediaType) ? undefined : doc.config?.mediaType);
  if (artifactType) meta.artifactType = artifactType;
  if (doc.annotations) meta.annotations = doc.annotations;
  await putLocalFile(svc, target, keys.manifest(t.image, digest), Readable.from([body]), {
    expect: { digest, size: body.length }, contentType: mediaType, meta,
  });
  if (!isDigest(reference)) {
    await svc.coord.withLock(`docker-tag:${target.name}:${t.image}:${reference}`, () =>
      recordLocalFile(svc, target, keys.tag(t.image, reference), digest, body.length, { contentType: mediaType }));
  }
  reply.code(201).header('location', `/v2/${t.name}/manifests/${digest}`).header('docker-content-digest', digest).header('content-length', '0');
  if (meta.subject) reply.header('oci-subject', meta.subject as string);
  return reply.send();
}

/**
 * The one type a pushed document can be read as. Anything that two clients
 * could read differently (CVE-2021-41190: an image that is also an index, a
 * mediaType that contradicts the Content-Type or the shape) is refused.
 */
function manifestType(doc: ManifestDoc, headerType: string): string {
  const invalid = (why: string) => new AppError('MANIFEST_INVALID', `manifest invalid: ${why}`);
  const isIndex = doc.manifests !== undefined;
  if (isIndex && (doc.layers !== undefined || doc.config !== undefined)) throw invalid('ambiguous: both manifests and layers/config');
  const mediaType = doc.mediaType ?? (SUPPORTED.has(headerType) ? headerType : isIndex ? MT.ociIndex : MT.ociManifest);
  if (!SUPPORTED.has(mediaType)) throw invalid(`unsupported media type ${mediaType}`);
  if (SUPPORTED.has(headerType) && headerType !== mediaType) throw invalid(`Content-Type ${headerType} does not match mediaType ${mediaType}`);
  if (INDEXES.has(mediaType) !== isIndex) throw invalid(`a document of this shape is not a ${mediaType}`);
  return mediaType;
}

/** Every blob an image manifest names, and every manifest an index names, must already be in this repo. */
async function checkReferences(svc: Services, repo: RepoDef, t: Target, mediaType: string, doc: ManifestDoc): Promise<void> {
  const image = t.image;
  const missing = async (d: Descriptor | undefined, what: 'blob' | 'manifest') => {
    if (!d || typeof d.digest !== 'string' || !isDigest(d.digest)) throw new AppError('MANIFEST_INVALID', `manifest invalid: bad ${what} descriptor`);
    const key = what === 'blob' ? keys.layer(image, d.digest) : keys.manifest(image, d.digest);
    if (await svc.meta.files.get(repo.name, key)) return;
    if (t.repo.kind === 'virtual' && (await linkFromMembers(svc, t.repo, repo, key, d.digest))) return;
    throw new AppError('MANIFEST_BLOB_UNKNOWN', `manifest references an unknown ${what}: ${d.digest}`, { digest: d.digest });
  };
  if (INDEXES.has(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw new AppError('MANIFEST_INVALID', 'manifest invalid: index without manifests');
    for (const m of doc.manifests) await missing(m, 'manifest');
    return;
  }
  if (!doc.config) throw new AppError('MANIFEST_INVALID', 'manifest invalid: no config');
  if (!Array.isArray(doc.layers)) throw new AppError('MANIFEST_INVALID', 'manifest invalid: no layers');
  await missing(doc.config, 'blob');
  for (const l of doc.layers) {
    if (Array.isArray(l.urls) && l.urls.length > 0) continue; // foreign layer: not ours to hold
    await missing(l, 'blob');
  }
}

/**
 * A push through a virtual repo: the client's HEAD found a blob in another
 * member (say, a remote cache of the base image) and skipped uploading it.
 * Link that blob into the local member the push lands in (waiting for a
 * cache fill still running), as a cross-repo mount would.
 */
async function linkFromMembers(svc: Services, virtual: RepoDef, target: RepoDef, key: string, digest: Digest, depth = 0): Promise<boolean> {
  if (depth > 8) return false;
  for (const name of virtual.members ?? []) {
    if (name === target.name) continue;
    const m = await svc.repos.get(name);
    if (!m) continue;
    if (m.kind === 'virtual') {
      if (await linkFromMembers(svc, m, target, key, digest, depth + 1)) return true;
      continue;
    }
    await svc.fills.get(`${m.name}:${key}`)?.done.catch(() => undefined);
    const rec = await svc.meta.files.get(m.name, key);
    if (rec && rec.digest === digest && (await svc.blob.stat(digest))) {
      await recordLocalFile(svc, target, key, digest, rec.size, { contentType: rec.contentType, meta: rec.meta });
      return true;
    }
  }
  return false;
}

/** DELETE by digest removes the manifest and every tag that points at it; by tag, only the tag. */
export async function deleteManifest(reply: FastifyReply, svc: Services, t: Target, target: RepoDef, reference: string) {
  if (isDigest(reference)) {
    const digest = parseDigest(reference);
    if (!(await svc.meta.files.get(target.name, keys.manifest(t.image, digest)))) throw new AppError('MANIFEST_UNKNOWN', `manifest unknown: ${digest}`);
    const tags: string[] = [];
    for await (const f of svc.meta.files.list(target.name, keys.tags(t.image))) if (f.digest === digest) tags.push(f.path);
    await svc.meta.tx(async (m) => {
      for (const p of tags) await m.files.remove(target.name, p);
      await m.files.remove(target.name, keys.manifest(t.image, digest));
    });
    return reply.code(202).send();
  }
  const row = await tagRow(svc, target, t.image, reference);
  if (!row) throw new AppError('MANIFEST_UNKNOWN', `manifest unknown: ${t.image}:${reference}`);
  await svc.meta.files.remove(target.name, keys.tag(t.image, reference));
  return reply.code(202).send();
}
