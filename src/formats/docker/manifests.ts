import { upstreamOf } from '../../repos/registry.js';
import { firstLeaf } from '../../repos/virtual.js';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { isDigest, parseDigest, sha256, type Digest } from '../../lib/digest.js';
import { parseJson } from '../../lib/decode.js';
import { AppError, isAppError, statusOf } from '../../lib/errors.js';
import { putLocalFile, recordLocalFile } from '../../repos/local.js';
import { readCapped } from '../../repos/resolve.js';
import { fillSettled } from '../../repos/remote.js';
import { resolveFile } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import type { FileRef, Served } from '../../repos/types.js';
import { sendDoc, sendServed, etagOf } from '../../server/send.js';
import type { FileRec, RepoDef } from '../../storage/meta/types.js';
import { isTag, keys, validateTag, type Target } from './names.js';
import { upstreamAuth, upstreamUrl } from './remote-auth.js';
import { collectRequest } from '../../lib/streams.js';
import { removeFile, removeFiles } from '../../repos/writes.js';

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

/**
 * A manifest by digest or tag, from any kind of repo (repos/resolve.ts). A tag is a file whose
 * bytes are the manifest it names (local: written on push; remote: a mutable file, see tagRef);
 * the manifest is then read by its digest from the repo that held the tag.
 */
export async function findManifest(svc: Services, repo: RepoDef, image: string, reference: string, ns?: string): Promise<Served> {
  const members = ns ? nsMembers(ns) : undefined;
  try {
    if (isDigest(reference)) return await resolveFile(svc, repo, { ...manifestRef(svc, image, reference), members });
    validateTag(reference);
    const tag = await resolveFile(svc, repo, { ...tagRef(svc, image, reference), members });
    const holder = tag.servedBy === repo.name ? repo : await svc.repos.get(tag.servedBy);
    if (!holder) throw new AppError('MANIFEST_UNKNOWN', `manifest unknown: ${image}:${reference}`);
    const served = await resolveFile(svc, holder, manifestRef(svc, image, tag.rec.digest));
    return { ...served, source: tag.source === 'remote' ? 'remote' : served.source, staleAge: tag.staleAge };
  } catch (err) {
    if (statusOf(err) === 404 && !(isAppError(err) && err.code === 'MANIFEST_UNKNOWN')) {
      throw new AppError('MANIFEST_UNKNOWN', `manifest unknown: ${image}:${reference}`);
    }
    throw err;
  }
}

/**
 * containerd's `?ns=registry-1.docker.io`: the members that may answer are the local (and
 * virtual) ones and the remote ones whose upstream is that registry (Docker Hub aliases count as one).
 */
export function nsMembers(ns: string): (m: RepoDef) => boolean {
  const hub = (h: string) => (['docker.io', 'registry-1.docker.io', 'index.docker.io'].includes(h) ? 'docker.io' : h);
  const want = hub(ns.toLowerCase());
  return (m) => {
    const upstream = upstreamOf(m);
    return !upstream || hub(upstream.host.toLowerCase()) === want || hub(upstream.hostname.toLowerCase()) === want;
  };
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
 * A tag of a remote repo as a mutable file of the shared remote path (repos/remote.ts): TTL,
 * single-flight, stale serving when the upstream fails. When due, it is revalidated with a HEAD
 * (which does not count against Docker Hub's pull limit); only a moved tag downloads, verified
 * against the digest the HEAD named, and its manifest is recorded by digest as well.
 */
function tagRef(svc: Services, image: string, tag: string): FileRef {
  return {
    path: keys.tag(image, tag),
    mutable: true,
    whole: true,
    accept: ACCEPT_ALL,
    rejectHtml: false,
    locate: (r) => upstreamUrl(svc, r, image, 'manifests', tag),
    upstreamHeaders: (r) => upstreamAuth(svc, r, image),
    probe: async (r) => {
      const head = await svc.upstream.get(svc.repos.upstreamSettings(r), upstreamUrl(svc, r, image, 'manifests', tag), {
        method: 'HEAD', accept: ACCEPT_ALL, headers: await upstreamAuth(svc, r, image),
      });
      head.body?.destroy();
      const digest = head.headers['docker-content-digest'];
      return isDigest(digest) ? digest : null;
    },
    aliases: (digest) => [keys.manifest(image, digest)],
  };
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
    return sendDoc(req, reply, served, { body, etag: etagOf(digest) }, served.rec.contentType ?? MT.dockerManifest, { compress: false, headers });
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
    if (await linkFromMembers(svc, t.repo, repo, key, d.digest)) return;
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
async function linkFromMembers(svc: Services, virtual: RepoDef, target: RepoDef, key: string, digest: Digest): Promise<boolean> {
  const linked = await firstLeaf(svc, virtual, async (m) => {
    if (m.name === target.name) return undefined;
    await fillSettled(svc, m.name, key);
    const rec = await svc.meta.files.get(m.name, key);
    if (!rec || rec.digest !== digest || !(await svc.blob.stat(digest))) return undefined;
    await recordLocalFile(svc, target, key, digest, rec.size, { contentType: rec.contentType, meta: rec.meta });
    return true;
  });
  return linked ?? false;
}

/** DELETE by digest removes the manifest and every tag that points at it; by tag, only the tag. */
export async function deleteManifest(reply: FastifyReply, svc: Services, t: Target, target: RepoDef, reference: string) {
  if (isDigest(reference)) {
    const digest = parseDigest(reference);
    if (!(await svc.meta.files.get(target.name, keys.manifest(t.image, digest)))) throw new AppError('MANIFEST_UNKNOWN', `manifest unknown: ${digest}`);
    const tags: string[] = [];
    for await (const f of svc.meta.files.list(target.name, keys.tags(t.image))) if (f.digest === digest) tags.push(f.path);
    await removeFiles(svc, target.name, [...tags, keys.manifest(t.image, digest)]);
    return reply.code(202).send();
  }
  const row = await tagRow(svc, target, t.image, reference);
  if (!row) throw new AppError('MANIFEST_UNKNOWN', `manifest unknown: ${t.image}:${reference}`);
  await removeFile(svc, target.name, keys.tag(t.image, reference));
  return reply.code(202).send();
}
