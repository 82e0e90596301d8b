import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { AppError } from './errors.js';

export interface CollectOptions {
  /** Refuse more than this many bytes. */
  max?: number;
  /** The error for a body over `max`; default 413 TOO_LARGE naming `what`. */
  tooLarge?: () => AppError;
  what?: string;
  /**
   * On overflow, drain the rest instead of destroying the stream: for request
   * bodies, so the client is still there to read the error.
   */
  drain?: boolean;
}

/** Reads a bounded stream (a document, a manifest, a request body) into memory. */
export async function collect(src: Readable, o: CollectOptions = {}): Promise<Buffer> {
  const overflow = () => o.tooLarge?.() ?? new AppError('TOO_LARGE', `${o.what ?? 'body'} is larger than the ${o.max}-byte limit`);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of src.iterator({ destroyOnReturn: !o.drain })) {
    total += (c as Buffer).length;
    if (o.max !== undefined && total > o.max) {
      if (o.drain) src.resume();
      throw overflow();
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** A request body, refused with 413 before reading when its declared length is already over `max`. */
export async function collectRequest(raw: IncomingMessage, max: number, what = 'request body'): Promise<Buffer> {
  const declared = Number(raw.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) {
    raw.resume();
    throw new AppError('TOO_LARGE', `${what} is larger than the ${max}-byte limit`);
  }
  return collect(raw, { max, what, drain: true });
}

/**
 * The `length` bytes at `start` of `src`. Without `awaitEnd`, `src` is dropped as soon as they
 * are out. With it, the last of them is held back until `src` ends: a cache fill still arriving
 * must finish and verify before any transfer of its bytes completes.
 */
export function byteRange(src: Readable, start: number, length: number, awaitEnd = false): Readable {
  return Readable.from((async function* () {
    let pos = 0;
    let left = length;
    let last: Buffer | undefined;
    try {
      for await (const c of src) {
        const chunk = c as Buffer;
        const from = Math.max(0, start - pos);
        pos += chunk.length;
        if (left === 0 || from >= chunk.length) continue;
        const part = chunk.subarray(from, from + left);
        left -= part.length;
        if (left > 0 || !awaitEnd) yield part;
        else {
          if (part.length > 1) yield part.subarray(0, part.length - 1);
          last = part.subarray(part.length - 1);
        }
        if (left === 0 && !awaitEnd) return;
      }
      if (last) yield last;
    } finally {
      src.destroy();
    }
  })(), { objectMode: false });
}
