import { createHash } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { hexOf, type Digest } from '../lib/digest.js';
import { AppError } from '../lib/errors.js';
import { parseRange, type ByteRange } from '../lib/range.js';
import type { Services } from '../repos/services.js';
import type { Served } from '../repos/types.js';

const SMALL = 256 * 1024;
const CHUNK = 1 << 20;

/** Small immutable blobs kept in memory after one verified read: they are addressed by content, so never stale. */
class SmallBlobCache {
  private readonly map = new Map<Digest, Buffer>();
  private bytes = 0;
  constructor(private readonly maxBytes = 64 * 1024 * 1024) {}
  get(d: Digest): Buffer | undefined {
    const b = this.map.get(d);
    if (b) { this.map.delete(d); this.map.set(d, b); }
    return b;
  }
  set(d: Digest, b: Buffer): void {
    this.map.set(d, b);
    this.bytes += b.length;
    for (const [k, v] of this.map) {
      if (this.bytes <= this.maxBytes) break;
      this.map.delete(k);
      this.bytes -= v.length;
    }
  }
  delete(d: Digest): void {
    const b = this.map.get(d);
    if (b) { this.bytes -= b.length; this.map.delete(d); }
  }
}

const smallBlobs = new SmallBlobCache();

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
 * Sends a served file with the contract's headers, conditional requests and
 * Range. Stored blobs are verified while they are sent (server.verify_on_read):
 * the last chunk is held back until the hash checks out, so a client never
 * receives a complete transfer of corrupt bytes.
 */
export async function sendServed(req: FastifyRequest, reply: FastifyReply, served: Served, svc: Services, o: SendOptions = {}): Promise<FastifyReply> {
  const rec = served.rec;
  reply.header('x-artifact-source', served.source);
  reply.header('x-artifact-repo', served.servedBy);
  reply.header('accept-ranges', served.body ? 'none' : 'bytes');
  reply.header('content-type', o.contentType ?? rec.contentType ?? 'application/octet-stream');
  if (served.staleAge !== undefined) {
    reply.header('x-artifact-stale', 'true');
    reply.header('age', String(served.staleAge));
  }
  for (const [k, v] of Object.entries(o.headers ?? {})) reply.header(k, v);
  const isHead = req.method === 'HEAD';

  if (served.body) {
    // First fetch: bytes are still arriving from the upstream.
    if (rec.digest) reply.header('etag', etagOf(rec.digest));
    if (served.size !== undefined && served.size >= 0) reply.header('content-length', String(served.size));
    if (isHead) {
      served.body.destroy();
      return reply.send();
    }
    return reply.send(served.body);
  }

  const etag = etagOf(rec.digest);
  const lastModified = new Date(rec.fetchedAt);
  reply.header('etag', etag);
  reply.header('last-modified', lastModified.toUTCString());
  if (notModified(req, etag, lastModified)) return reply.code(304).send();

  let range: ByteRange | null = null;
  const parsed = parseRange(req.headers.range, rec.size);
  const ifRange = req.headers['if-range'];
  if (parsed === 'unsatisfiable') {
    reply.header('content-range', `bytes */${rec.size}`);
    throw new AppError('RANGE_NOT_SATISFIABLE', 'requested range not satisfiable');
  }
  if (parsed && (!ifRange || ifRange === etag)) range = parsed;
  if (range) {
    reply.code(206);
    reply.header('content-range', `bytes ${range.start}-${range.end}/${rec.size}`);
    reply.header('content-length', String(range.end - range.start + 1));
  } else {
    reply.header('content-length', String(rec.size));
  }
  if (isHead) return reply.send();

  const verify = svc.config.server.verify_on_read;
  const local = svc.blob.localPath?.(rec.digest);
  if (!range && rec.size <= SMALL && local) {
    let buf = smallBlobs.get(rec.digest);
    if (!buf) {
      try {
        buf = readFileSync(local);
      } catch {
        throw await blobMissing(svc, rec.digest);
      }
      if (verify && `sha256:${createHash('sha256').update(buf).digest('hex')}` !== rec.digest) {
        await quarantine(svc, rec.digest);
        throw new AppError('INTERNAL', 'stored content failed verification');
      }
      smallBlobs.set(rec.digest, buf);
    }
    return reply.send(buf);
  }
  const stream = local
    ? await openLocal(svc, local, rec.digest, rec.size, range, verify && !range)
    : verify && !range ? verifying(await svc.blob.read(rec.digest), rec.digest, svc) : await svc.blob.read(rec.digest, range ?? undefined);
  return reply.send(stream);
}

async function blobMissing(svc: Services, d: Digest): Promise<AppError> {
  svc.log.error({ digest: d }, 'blob missing from store');
  return new AppError('INTERNAL', 'stored content is missing');
}

/** Reads a local blob in 1 MiB positional reads (far fewer threadpool hops than a default read stream). */
async function openLocal(svc: Services, path: string, d: Digest, size: number, range: ByteRange | null, verify: boolean): Promise<Readable> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, 'r');
  } catch {
    throw await blobMissing(svc, d);
  }
  let pos = range?.start ?? 0;
  const end = range ? range.end + 1 : size;
  const hash = verify ? createHash('sha256') : undefined;
  let held: Buffer | undefined;
  return new Readable({
    highWaterMark: CHUNK,
    async read() {
      try {
        for (;;) {
          if (pos >= end) {
            if (hash && `sha256:${hash.digest('hex')}` !== d) {
              await quarantine(svc, d);
              throw new Error(`blob ${d} failed verification while being served`);
            }
            if (held) this.push(held);
            this.push(null);
            return;
          }
          const want = Math.min(CHUNK, end - pos);
          const buf = Buffer.allocUnsafe(want);
          const { bytesRead } = await fh.read(buf, 0, want, pos);
          if (bytesRead === 0) throw new Error(`blob ${d} is shorter than recorded`);
          pos += bytesRead;
          const chunk = bytesRead === want ? buf : buf.subarray(0, bytesRead);
          if (!hash) return void this.push(chunk);
          hash.update(chunk);
          // Hold one chunk back so the final bytes go out only after the hash checks out.
          const prev = held;
          held = chunk;
          if (prev) return void this.push(prev);
        }
      } catch (err) {
        this.destroy(err as Error);
      }
    },
    destroy(err, cb) {
      fh.close().then(() => cb(err), () => cb(err));
    },
  });
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

/**
 * A blob whose bytes no longer match its digest: moved aside (local path) or
 * deleted, and remote repos' rows dropped so the next request refetches it.
 * Local rows stay, for `verify --repair` to report and drop.
 */
export async function quarantine(svc: Services, d: Digest): Promise<void> {
  svc.log.error({ digest: d }, 'blob failed verification; quarantined');
  smallBlobs.delete(d);
  const local = svc.blob.localPath?.(d);
  if (local) {
    const dir = join(svc.config.data_dir, 'quarantine');
    await fsp.mkdir(dir, { recursive: true });
    await fsp.rename(local, join(dir, basename(local))).catch(() => {});
  } else {
    await svc.blob.delete(d);
  }
  for (const f of await svc.meta.files.byDigest(d)) {
    if (f.source === 'remote') await svc.meta.files.remove(f.repo, f.path);
  }
}
