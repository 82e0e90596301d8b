import { firstLeaf } from '../../repos/virtual.js';
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { isDigest, parseDigest, type Digest } from '../../lib/digest.js';
import { AppError, isAppError } from '../../lib/errors.js';
import { putLocalFile, recordLocalFile, writeLocalRow } from '../../repos/local.js';
import type { Services } from '../../repos/services.js';
import type { Part } from '../../storage/blob/types.js';
import { ingestStream, publish, type InPublish } from '../../storage/ingest.js';
import type { RepoDef, UploadSession } from '../../storage/meta/types.js';
import { keys, resolveName, type Target } from './names.js';
import { endUploadSession, startUploadSession } from '../../repos/writes.js';

/**
 * Blob uploads (distribution's blob upload state machine). A session is a
 * `sessions` row plus the parts stored so far (BlobStore.parts: files next to
 * the CAS, or objects in the bucket, so any instance sharing the stores can
 * take the next chunk). Each chunk is one part, written at the exact offset
 * the client names; a chunk that fails keeps nothing. The final PUT publishes
 * a single part as it is (a rename on the filesystem) or streams the parts
 * into one blob, verifying the digest; a mismatch drops the session.
 */
/**
 * Running sha256 of each session's parts in this server (svc.caches), so the final PUT need not
 * read them again. Used only while it covers exactly the bytes stored; otherwise (evicted from
 * the bounded cache, another instance took a chunk, a restart) the staged parts are re-hashed as
 * they are joined into the blob, so an eviction costs one read of the parts, never a wrong digest.
 */
export const UPLOAD_HASHES = { name: 'docker.upload-hashes', maxEntries: 10_000 };
/** What one entry is counted as: a sha256 state and its bookkeeping. */
const HASH_BYTES = 512;
const running = (svc: Services) => svc.caches.lru<{ hash: Hash; size: number }>(UPLOAD_HASHES.name, UPLOAD_HASHES.maxEntries * HASH_BYTES, UPLOAD_HASHES.maxEntries, HASH_BYTES);

function uploadUrl(t: Target, id: string): string {
  return `/v2/${t.name}/blobs/uploads/${id}`;
}

function rangeHeader(size: number): string {
  return `0-${Math.max(0, size - 1)}`;
}

const total = (parts: Part[]) => parts.reduce((n, p) => n + p.size, 0);

function hasBody(req: FastifyRequest): boolean {
  const len = req.headers['content-length'];
  if (len !== undefined) return Number(len) > 0;
  return req.headers['transfer-encoding'] !== undefined;
}

const LAYER = { contentType: 'application/octet-stream' };

function linkBlob(svc: Services, repo: RepoDef, image: string, digest: Digest, size: number) {
  return recordLocalFile(svc, repo, keys.layer(image, digest), digest, size, LAYER);
}

function created(reply: FastifyReply, t: Target, digest: Digest) {
  return reply.code(201).header('location', `/v2/${t.name}/blobs/${digest}`).header('docker-content-digest', digest).header('content-length', '0').send();
}

/** POST /v2/<name>/blobs/uploads/ : mount, monolithic upload, or a new session. */
export async function startUpload(req: FastifyRequest, reply: FastifyReply, svc: Services, t: Target, target: RepoDef) {
  const q = req.query as Record<string, string | undefined>;
  if (q.mount && isDigest(q.mount)) {
    const linked = await mount(svc, t, target, q.mount, q.from);
    if (linked) return created(reply, t, q.mount);
  }
  if (q.digest !== undefined) {
    const digest = parseDigest(q.digest);
    const len = req.headers['content-length'];
    await putLocalFile(svc, target, keys.layer(t.image, digest), req.raw, {
      expect: { digest, size: len !== undefined ? Number(len) : undefined }, contentType: 'application/octet-stream',
    });
    return created(reply, t, digest);
  }
  await boundSessions(svc, target);
  const id = randomUUID();
  await startUploadSession(svc, { id, repo: target.name, scope: t.image, startedAt: Date.now() });
  return reply.code(202).header('location', uploadUrl(t, id)).header('range', '0-0').header('docker-upload-uuid', id)
    .header('content-length', '0').send();
}

/**
 * At most uploads.max_sessions unfinished sessions per repo, so clients that
 * never finish cannot pile up rows and parts: expired ones are reaped on the
 * spot, and if the repo is still full the new session is refused (429).
 */
async function boundSessions(svc: Services, repo: RepoDef): Promise<void> {
  const max = svc.config.uploads.max_sessions;
  if (!max || (await svc.meta.sessions.count(repo.name)) < max) return;
  for (const s of await svc.meta.sessions.olderThan(Date.now() - svc.config.uploads.session_ttl)) {
    if (s.repo === repo.name) await dropSession(svc, s.id);
  }
  if ((await svc.meta.sessions.count(repo.name)) >= max) {
    throw new AppError('TOOMANYREQUESTS', `${repo.name} has ${max} unfinished uploads; finish or cancel some first`);
  }
}

/** Cross-repo mount: link the blob the source image already has; no bytes are copied. */
async function mount(svc: Services, t: Target, target: RepoDef, digest: Digest, from: string | undefined): Promise<boolean> {
  if (!from) return false;
  let src: Target;
  try {
    src = await resolveName(svc, from);
  } catch {
    return false;
  }
  // A virtual source: whichever member holds the blob for that image.
  const linked = await firstLeaf(svc, src.repo, async (holder) => {
    const rec = await svc.meta.files.get(holder.name, keys.layer(src.image, digest));
    if (!rec || rec.digest !== digest || !(await svc.blob.stat(digest))) return undefined;
    await linkBlob(svc, target, t.image, digest, rec.size);
    return true;
  });
  return linked ?? false;
}

async function session(svc: Services, target: RepoDef, t: Target, id: string): Promise<UploadSession> {
  const s = /^[0-9a-f-]{36}$/.test(id) ? await svc.meta.sessions.get(id) : null;
  if (!s || s.repo !== target.name || s.scope !== t.image) throw new AppError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry');
  if (Date.now() - s.startedAt > svc.config.uploads.session_ttl) {
    await dropSession(svc, id);
    throw new AppError('BLOB_UPLOAD_UNKNOWN', 'blob upload expired');
  }
  return s;
}

/** Stores the request body as the part at the current size; a Content-Range that starts elsewhere is refused with 416. */
async function append(req: FastifyRequest, svc: Services, t: Target, id: string, reply: FastifyReply): Promise<number> {
  const size = total(await svc.blob.parts.list(id));
  const cr = req.headers['content-range'];
  if (cr !== undefined) {
    const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/\d+|\/\*)?$/.exec(String(cr).trim());
    if (!m || Number(m[1]) !== size) {
      reply.header('location', uploadUrl(t, id)).header('range', rangeHeader(size)).header('docker-upload-uuid', id);
      throw new AppError('RANGE_INVALID', `chunk starts at ${m ? m[1] : '?'}, upload is at ${size}`);
    }
  }
  const max = svc.config.uploads.max_size;
  let written = 0;
  let state = running(svc).get(id);
  if (state && state.size !== size) state = undefined;
  if (!state && size === 0) state = { hash: createHash('sha256'), size: 0 };
  running(svc).delete(id);
  const part = await svc.blob.parts.open(id, size);
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      written += chunk.length;
      if (max && size + written > max) return cb(new AppError('TOO_LARGE', `upload exceeds ${max} bytes`));
      state?.hash.update(chunk);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(req.raw, counter, part.stream);
  } catch (err) {
    await svc.blob.discard(part.staged).catch(() => {});
    throw err;
  }
  if (written === 0) await svc.blob.discard(part.staged);
  if (state) {
    state.size = size + written;
    running(svc).set(id, state, HASH_BYTES);
  }
  return size + written;
}

/** PATCH: one chunk (streamed or Content-Range'd). */
export async function patchUpload(req: FastifyRequest, reply: FastifyReply, svc: Services, t: Target, target: RepoDef, id: string) {
  await session(svc, target, t, id);
  const size = await svc.coord.withLock(`docker-upload:${id}`, () => append(req, svc, t, id, reply));
  return reply.code(202).header('location', uploadUrl(t, id)).header('range', rangeHeader(size)).header('docker-upload-uuid', id)
    .header('content-length', '0').send();
}

/** GET: where the upload is. */
export async function uploadStatus(reply: FastifyReply, svc: Services, t: Target, target: RepoDef, id: string) {
  await session(svc, target, t, id);
  const size = total(await svc.blob.parts.list(id));
  return reply.code(204).header('location', uploadUrl(t, id)).header('range', rangeHeader(size)).header('docker-upload-uuid', id).send();
}

/** PUT ?digest=: last chunk (optional), then verify and publish. */
export async function finishUpload(req: FastifyRequest, reply: FastifyReply, svc: Services, t: Target, target: RepoDef, id: string) {
  await session(svc, target, t, id);
  const digest = parseDigest((req.query as Record<string, string | undefined>).digest);
  return svc.coord.withLock(`docker-upload:${id}`, async () => {
    if (hasBody(req)) await append(req, svc, t, id, reply);
    else req.raw.resume();
    const parts = await svc.blob.parts.list(id);
    const size = total(parts);
    const state = running(svc).get(id);
    running(svc).delete(id);
    const known = state && state.size === size ? (`sha256:${state.hash.digest('hex')}` as Digest) : undefined;
    const mismatch = (detail: string) => new AppError('DIGEST_INVALID', `provided digest did not match uploaded content (${detail})`);
    if (known && known !== digest) {
      await dropSession(svc, id);
      throw mismatch(`got ${known}`);
    }
    // The blob and its repo link land in one transaction: gc never sees the new layer unreferenced.
    const link: InPublish = (m) => writeLocalRow(m, target, keys.layer(t.image, digest), digest, size, LAYER);
    try {
      if (known && parts.length === 1) await publish(svc, { staged: parts[0].staged, digest, size }, link);
      else await ingestStream(svc, joined(svc, parts), { expect: { digest, size } }, link);
    } catch (err) {
      if (isAppError(err) && err.code === 'DIGEST_INVALID') {
        await dropSession(svc, id);
        throw mismatch(err.message);
      }
      throw err;
    }
    await dropSession(svc, id);
    return created(reply, t, digest);
  });
}

/** The parts of an upload, one after another. */
function joined(svc: Services, parts: Part[]): Readable {
  return Readable.from((async function* () {
    for (const p of parts) yield* await svc.blob.parts.read(p);
  })(), { objectMode: false });
}

export async function cancelUpload(reply: FastifyReply, svc: Services, t: Target, target: RepoDef, id: string) {
  await session(svc, target, t, id);
  await dropSession(svc, id);
  return reply.code(204).send();
}

export async function dropSession(svc: Services, id: string): Promise<void> {
  running(svc).delete(id);
  await svc.blob.parts.drop(id);
  await endUploadSession(svc, id);
}
