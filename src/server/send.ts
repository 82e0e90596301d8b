import { createHash } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { hexOf, sha256, type Digest } from '../lib/digest.js';
import { AppError } from '../lib/errors.js';
import { collect } from '../lib/streams.js';
import { parseRange, type ByteRange } from '../lib/range.js';
import { byteRange } from '../lib/streams.js';
import { quarantineBlob } from '../repos/quarantine.js';
import { modifiedAt } from '../repos/remote.js';
import type { ServedDoc } from '../repos/resolve.js';
import type { Services } from '../repos/services.js';
import type { Served } from '../repos/types.js';

const SMALL = 256 * 1024;
const CHUNK = 1 << 20;

/** Small immutable blobs kept in memory after one verified read: they are addressed by content, so never stale. */
const smallBlobs = (svc: Services) => svc.caches.lru<Buffer>('send.small-blobs', 64 * 1024 * 1024, 100_000);

const validators = new WeakMap<Served['rec'], { etag: string; lastModified: Date; lastModifiedText: string }>();

/** ETag and Last-Modified of a row, computed once per row object (rows are cached for a second). */
function validatorsOf(rec: Served['rec']) {
  let v = validators.get(rec);
  if (!v) {
    const lastModified = new Date(modifiedAt(rec));
    v = { etag: etagOf(rec.digest), lastModified, lastModifiedText: lastModified.toUTCString() };
    validators.set(rec, v);
  }
  return v;
}

export function etagOf(d: Digest): string {
  return `"${hexOf(d)}"`;
}

function notModified(req: FastifyRequest, etag: string | undefined, lastModified: Date | undefined): boolean {
  const inm = req.headers['if-none-match'];
  if (inm && etag) return inm.split(',').some((t) => t.trim().replace(/^W\//, '') === etag || t.trim() === '*');
  const ims = req.headers['if-modified-since'];
  if (ims && lastModified && !inm) {
    const t = Date.parse(ims);
    return !Number.isNaN(t) && Math.floor(lastModified.getTime() / 1000) <= Math.floor(t / 1000);
  }
  return false;
}

export interface SendOptions {
  contentType?: string;
  headers?: Record<string, string>;
}

/**
 * The single byte range the request asks for, if it applies (If-Range matches the ETag), with
 * the 206 status and Content-Range set; null for the whole body; 416 when unsatisfiable.
 */
function rangeOf(req: FastifyRequest, reply: FastifyReply, size: number, etag: string | undefined): ByteRange | null {
  const parsed = parseRange(req.headers.range, size);
  if (parsed === 'unsatisfiable') {
    reply.header('content-range', `bytes */${size}`);
    throw new AppError('RANGE_NOT_SATISFIABLE', 'requested range not satisfiable');
  }
  const ifRange = req.headers['if-range'];
  if (!parsed || (ifRange && ifRange !== etag)) return null;
  reply.code(206);
  reply.header('content-range', `bytes ${parsed.start}-${parsed.end}/${size}`);
  return parsed;
}

/**
 * Sends a served file with the contract's headers, conditional requests and
 * Range. Stored blobs are verified while they are sent (server.verify_on_read):
 * the last chunk is held back until the hash checks out, so a client never
 * receives a complete transfer of corrupt bytes.
 */
export async function sendServed(req: FastifyRequest, reply: FastifyReply, served: Served, svc: Services, o: SendOptions = {}): Promise<FastifyReply> {
  const rec = served.rec;
  originHeaders(reply, served);
  const knownSize = served.body ? (served.size !== undefined && served.size >= 0 ? served.size : undefined) : rec.size;
  reply.header('accept-ranges', knownSize === undefined ? 'none' : 'bytes');
  reply.header('content-type', o.contentType ?? rec.contentType ?? 'application/octet-stream');
  for (const [k, v] of Object.entries(o.headers ?? {})) reply.header(k, v);
  const isHead = req.method === 'HEAD';

  if (served.body) {
    // First fetch: bytes are still arriving from the upstream.
    const etag = rec.digest ? etagOf(rec.digest) : undefined;
    if (etag) reply.header('etag', etag);
    if (rec.upstreamLastModified) reply.header('last-modified', rec.upstreamLastModified);
    let range: ByteRange | null = null;
    try {
      if (knownSize !== undefined) range = rangeOf(req, reply, knownSize, etag);
    } catch (err) {
      served.body.destroy();
      throw err;
    }
    if (knownSize !== undefined) reply.header('content-length', String(range ? range.end - range.start + 1 : knownSize));
    if (isHead) {
      served.body.destroy();
      return reply.send();
    }
    // A range of a fill completes only once the whole file arrived and verified.
    return reply.send(range ? byteRange(served.body, range.start, range.end - range.start + 1, true) : served.body);
  }

  const { etag, lastModified, lastModifiedText } = validatorsOf(rec);
  reply.header('etag', etag);
  reply.header('last-modified', lastModifiedText);
  if (notModified(req, etag, lastModified)) return reply.code(304).send();

  const range = rangeOf(req, reply, rec.size, etag);
  if (range) {
    reply.header('content-length', String(range.end - range.start + 1));
  } else {
    reply.header('content-length', String(rec.size));
  }
  if (isHead) return reply.send();

  const verify = svc.config.server.verify_on_read;
  const local = svc.blob.sendFile?.(rec.digest);
  if (!range && rec.size <= SMALL) {
    let buf = smallBlobs(svc).get(rec.digest);
    if (!buf) {
      try {
        // Remote stores (S3) too: one bounded read, then served from memory like a local file.
        buf = local ? readFileSync(local) : await collect(await svc.blob.read(rec.digest), { max: SMALL });
      } catch {
        throw await blobMissing(svc, rec.digest);
      }
      if (buf.length !== rec.size || (verify && `sha256:${createHash('sha256').update(buf).digest('hex')}` !== rec.digest)) {
        await quarantine(svc, rec.digest);
        throw new AppError('INTERNAL', 'stored content failed verification');
      }
      smallBlobs(svc).set(rec.digest, buf, buf.length);
    }
    // Straight to the socket: fastify's send path costs more than the bytes here.
    reply.hijack();
    reply.raw.writeHead(reply.statusCode, reply.getHeaders() as Record<string, string>);
    reply.raw.end(buf);
    return reply;
  }
  if (local) {
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(local, 'r');
    } catch {
      throw await blobMissing(svc, rec.digest);
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(reply.statusCode, reply.getHeaders() as Record<string, string>);
    void pumpFile(svc, fh, res, rec.digest, range?.start ?? 0, range ? range.end + 1 : rec.size, verify && !range);
    return reply;
  }
  const stream = verify && !range ? verifying(await svc.blob.read(rec.digest), rec.digest, svc) : await svc.blob.read(rec.digest, range ?? undefined);
  return reply.send(stream);
}

async function blobMissing(svc: Services, d: Digest): Promise<AppError> {
  svc.log.error({ digest: d }, 'blob missing from store');
  return new AppError('INTERNAL', 'stored content is missing');
}

/**
 * Writes bytes [pos, end) of a local blob to the response with 1 MiB
 * positional reads, the next read running while the last chunk is written.
 * With `verify`, one chunk is held back until the whole file hashed right;
 * on a mismatch (or a short file) the connection is destroyed, so the client
 * sees an incomplete transfer, and the blob is quarantined.
 */
async function pumpFile(svc: Services, fh: fsp.FileHandle, res: ServerResponse, d: Digest, pos: number, end: number, verify: boolean): Promise<void> {
  const hash = verify ? createHash('sha256') : undefined;
  let gone = false;
  let wake: (() => void) | undefined;
  const onGone = () => { gone = true; wake?.(); };
  res.on('close', onGone);
  const drained = () => new Promise<void>((resolve) => {
    const done = () => { res.removeListener('drain', done); wake = undefined; resolve(); };
    wake = done;
    res.once('drain', done);
  });
  // Chunk buffers are reused once the socket has taken them (the write callback), so a transfer of
  // any size holds about three of them: one being read, one held back, one being written.
  const pool: Buffer[] = [];
  const send = async (chunk: Buffer) => {
    // Every chunk is a view of its own CHUNK-sized allocation (readAt), so the whole buffer can go back.
    const ok = res.write(chunk, () => { if (pool.length < 2) pool.push(Buffer.from(chunk.buffer, 0, CHUNK)); });
    if (!ok && !gone) await drained();
  };
  const readAt = async (at: number): Promise<Buffer> => {
    const want = Math.min(CHUNK, end - at);
    const buf = pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
    const { bytesRead } = await fh.read(buf, 0, want, at);
    if (bytesRead === 0) throw new Error(`blob ${d} is shorter than recorded`);
    return buf.subarray(0, bytesRead);
  };
  let held: Buffer | undefined;
  try {
    let next = pos < end ? readAt(pos) : undefined;
    while (next && !gone) {
      const chunk = await next;
      pos += chunk.length;
      next = pos < end ? readAt(pos) : undefined;
      next?.catch(() => {});
      if (!hash) {
        await send(chunk);
        continue;
      }
      hash.update(chunk);
      if (held) await send(held);
      held = chunk;
    }
    if (gone) return;
    if (hash && `sha256:${hash.digest('hex')}` !== d) {
      await quarantine(svc, d);
      throw new Error(`blob ${d} failed verification while being served`);
    }
    if (held) res.write(held);
    res.end();
  } catch (err) {
    svc.log.error({ digest: d, err: (err as Error).message }, 'send aborted');
    if ((err as Error).message.includes('shorter than recorded')) await quarantine(svc, d).catch(() => {});
    res.destroy();
  } finally {
    res.removeListener('close', onGone);
    await fh.close().catch(() => {});
  }
}

/** Verification for stores without a local path: hash as it passes, hold the last chunk back. */
function verifying(src: Readable, d: Digest, svc: Services): Readable {
  const hash = createHash('sha256');
  return Readable.from((async function* () {
    let held: Buffer | undefined;
    for await (const chunk of src) {
      hash.update(chunk as Buffer);
      if (held) yield held;
      held = chunk as Buffer;
    }
    if (`sha256:${hash.digest('hex')}` !== d) {
      await quarantine(svc, d);
      throw new Error(`blob ${d} failed verification while being served`);
    }
    if (held) yield held;
  })(), { objectMode: false });
}

/** Quarantines a blob that failed verification while being served, and forgets its cached bytes. */
export async function quarantine(svc: Services, d: Digest): Promise<void> {
  smallBlobs(svc).delete(d);
  await quarantineBlob(svc, d);
}

/** Where a served file or document came from: a resolved one (repos/resolve.ts), or a repo's own. */
export type DocOrigin = Pick<ServedDoc<unknown>, 'source' | 'servedBy' | 'staleAge' | 'parts'>;

/**
 * The contract's origin headers, written here only, for files and documents alike:
 * X-Artifact-Source and X-Artifact-Repo, X-Artifact-Parts for a merged document (each part's
 * repo and source), X-Artifact-Stale and Age when a stale copy stood in for a failing upstream.
 */
export function originHeaders(reply: FastifyReply, origin: DocOrigin): FastifyReply {
  reply.header('x-artifact-source', origin.source);
  reply.header('x-artifact-repo', origin.servedBy);
  if (origin.parts) reply.header('x-artifact-parts', origin.parts.map((p) => `${p.repo}=${p.source}`).join(', '));
  if (origin.staleAge !== undefined) {
    reply.header('x-artifact-stale', 'true');
    reply.header('age', String(origin.staleAge));
  }
  return reply;
}

/** @deprecated the old name of originHeaders. */
export const docHeaders = originHeaders;

const gzipAsync = promisify(gzip);
/** Below this, gzip is not worth a round through zlib. */
const GZIP_MIN = 1024;

/** A rendered document; `gzipped` gives its gzip form when the renderer caches one. */
export interface RenderedDoc {
  body: Buffer;
  etag: string;
  gzipped?: () => Promise<Buffer>;
}

function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  return header.split(',').some((part) => {
    const [coding, ...params] = part.split(';').map((x) => x.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    return (coding === 'gzip' || coding === '*') && (!q || Number(q.slice(2)) > 0);
  });
}

export interface DocOptions {
  /** gzip when the client accepts it (default true; off for bodies that are already compressed). */
  compress?: boolean;
  /** Extra headers (Cache-Control, Docker-Content-Digest...). */
  headers?: Record<string, string>;
}

/**
 * The one document responder: a metadata document in memory (packument, simple page, index,
 * a manifest on its first fetch) with the origin headers, Vary, ETag and If-None-Match (304),
 * and gzip when the client accepts it (its own ETag, so caches never mix the two encodings up).
 * Stored files go through sendServed instead, which streams them.
 */
export async function sendDoc(req: FastifyRequest, reply: FastifyReply, origin: DocOrigin, doc: RenderedDoc, contentType: string,
  o: DocOptions = {}): Promise<FastifyReply> {
  originHeaders(reply, origin);
  for (const [k, v] of Object.entries(o.headers ?? {})) reply.header(k, v);
  reply.header('vary', 'Accept, Accept-Encoding');
  const gz = o.compress !== false && doc.body.length >= GZIP_MIN && acceptsGzip(req.headers['accept-encoding']);
  const etag = gz ? `${doc.etag.slice(0, -1)}-gzip"` : doc.etag;
  reply.header('etag', etag);
  if (req.headers['if-none-match'] && notModified(req, etag, undefined)) return reply.code(304).send();
  reply.header('content-type', contentType);
  const body = gz ? await (doc.gzipped?.() ?? gzipAsync(doc.body)) : doc.body;
  if (gz) reply.header('content-encoding', 'gzip');
  reply.header('content-length', String(body.length));
  return reply.send(body);
}

/** A document in its final bytes (an index, a signed archive, a key, JSON): its ETag is the hash of those bytes. */
export function sendDocument(req: FastifyRequest, reply: FastifyReply, origin: DocOrigin, body: Buffer | string, contentType: string,
  o: DocOptions = {}): Promise<FastifyReply> {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  return sendDoc(req, reply, origin, { body: bytes, etag: etagOf(sha256(bytes)) }, contentType, o);
}
