import { createHash, randomUUID } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AppError } from './errors.js';
import type { Digest } from './digest.js';

/** A file written to local temp space while hashed; handed to a BlobStore to commit. */
export interface Spooled {
  path: string;
  digest: Digest;
  size: number;
}

/**
 * Other digests a body must match, by node:crypto algorithm name, as hex
 * (npm's sha512 integrity / sha1 shasum, md5 of older indexes...). Checked
 * with sha256 while streaming; a mismatch is DIGEST_INVALID.
 */
export type ExtraHashes = Partial<Record<'sha1' | 'sha384' | 'sha512' | 'md5', string>>;

/**
 * A format's own check of a body that streams past (an .apk's control-stream checksum): sees
 * every chunk, then `final` throws (DIGEST_INVALID, BAD_REQUEST...) if the body must not be kept.
 */
export interface BodyCheck {
  update(chunk: Buffer): void;
  final(): void;
}

export interface SpoolOptions {
  expect?: { digest?: Digest; size?: number; hashes?: ExtraHashes; check?: BodyCheck };
  maxSize?: number;
  signal?: AbortSignal;
  /** Called with the temp path once it exists, and on every chunk written (for readers tailing it). */
  onProgress?: (written: number, path: string) => void;
}

export function tempPath(dir: string, prefix = 'spool'): string {
  return join(dir, `${prefix}-${Date.now()}-${randomUUID()}`);
}

/** Size and digests of a body that streamed through `hashInto`, all checked against the expectation. */
export interface Hashed {
  digest: Digest;
  size: number;
}

/**
 * Streams `src` into `sink`, hashing on the way. The expectation (size, sha256, other digests)
 * is checked before the sink is ended: on a mismatch the sink is failed, never finished, so a
 * sink that publishes on finish (an S3 upload) never makes unverified bytes visible.
 */
export async function hashInto(src: Readable, sink: Writable, o: SpoolOptions = {}): Promise<Hashed> {
  const hash = createHash('sha256');
  const extra = Object.entries(o.expect?.hashes ?? {})
    .filter((e): e is [string, string] => typeof e[1] === 'string')
    .map(([alg, hex]) => ({ alg, hex: hex.toLowerCase(), h: createHash(alg) }));
  let size = 0;
  let digest: Digest | undefined;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      if (o.maxSize !== undefined && size > o.maxSize) return cb(new AppError('TOO_LARGE', `body exceeds ${o.maxSize} bytes`));
      if (o.expect?.size !== undefined && size > o.expect.size) return cb(new AppError('SIZE_INVALID', `body is larger than the expected ${o.expect.size} bytes`));
      hash.update(chunk);
      for (const x of extra) x.h.update(chunk);
      try {
        o.expect?.check?.update(chunk);
      } catch (err) {
        return cb(err as Error);
      }
      cb(null, chunk);
    },
    flush(cb) {
      digest = `sha256:${hash.digest('hex')}`;
      if (o.expect?.size !== undefined && size !== o.expect.size) {
        return cb(new AppError('SIZE_INVALID', `expected ${o.expect.size} bytes, got ${size}`));
      }
      if (o.expect?.digest && o.expect.digest !== digest) {
        return cb(new AppError('DIGEST_INVALID', `digest mismatch: expected ${o.expect.digest}, got ${digest}`));
      }
      for (const x of extra) {
        const got = x.h.digest('hex');
        if (got !== x.hex) return cb(new AppError('DIGEST_INVALID', `${x.alg} mismatch: expected ${x.hex}, got ${got}`));
      }
      try {
        o.expect?.check?.final();
      } catch (err) {
        return cb(err as Error);
      }
      cb();
    },
  });
  await pipeline(src, counter, sink, { signal: o.signal });
  return { digest: digest!, size };
}

/**
 * Streams `src` into a new temp file under `dir`, hashing on the way.
 * On any failure (source error, abort, size or digest mismatch) the temp file is removed.
 */
export async function spool(src: Readable, dir: string, o: SpoolOptions = {}): Promise<Spooled> {
  const path = tempPath(dir);
  try {
    return { path, ...(await hashInto(src, fileSink(path, o.onProgress), o)) };
  } catch (err) {
    await fsp.rm(path, { force: true });
    throw err;
  }
}

/** A file writer that reports each chunk once it is in the file, so tailing readers never read past it. */
export function fileSink(path: string, onProgress?: (written: number, path: string) => void): Writable {
  let fh: fsp.FileHandle | undefined;
  let written = 0;
  const writeAll = async (chunks: Buffer[]) => {
    fh ??= await fsp.open(path, 'w');
    if (written === 0) onProgress?.(0, path);
    for (const c of chunks) {
      let off = 0;
      while (off < c.length) {
        const { bytesWritten } = await fh.write(c, off, c.length - off);
        off += bytesWritten;
      }
      written += c.length;
    }
    onProgress?.(written, path);
  };
  return new Writable({
    highWaterMark: 256 * 1024,
    writev(chunks, cb) {
      writeAll(chunks.map((c) => c.chunk as Buffer)).then(() => cb(), cb);
    },
    final(cb) {
      (async () => {
        fh ??= await fsp.open(path, 'w');
        onProgress?.(written, path);
        await fh.close();
        fh = undefined;
      })().then(() => cb(), cb);
    },
    destroy(err, cb) {
      const h = fh;
      fh = undefined;
      if (h) h.close().then(() => cb(err), () => cb(err));
      else cb(err);
    },
  });
}
