import type { IncomingMessage, ServerResponse } from 'node:http';
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

/** How much of a refused request body is read and dropped before the connection is closed instead. */
const DISCARD_BOUND = 8 << 20;
const LINGER_MS = 2000;

/**
 * After refusing a request body: read and drop the rest, so a client still
 * sending reads our answer rather than a reset. Past `bound` bytes, stop
 * paying for it: once the answer (`res`, when given) is out, half-close and
 * keep dropping input for a moment (nginx's lingering close), then close.
 */
export function discardRequest(raw: IncomingMessage, res?: ServerResponse, bound = DISCARD_BOUND): void {
  const socket = raw.socket;
  let left = bound;
  const count = (c: Buffer) => {
    left -= c.length;
    if (left >= 0) return;
    raw.off('data', count);
    const linger = () => {
      socket.end();
      setTimeout(() => socket.destroy(), LINGER_MS).unref();
    };
    if (!res || res.writableFinished) linger();
    else res.once('finish', linger);
  };
  if (!raw.complete) raw.on('data', count);
  raw.resume();
}

/** A request body, refused with 413 before reading when its declared length is already over `max`. */
export async function collectRequest(raw: IncomingMessage, max: number, what = 'request body', res?: ServerResponse): Promise<Buffer> {
  const tooLarge = () => new AppError('TOO_LARGE', `${what} is larger than the ${max}-byte limit`);
  const declared = Number(raw.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) {
    discardRequest(raw, res);
    throw tooLarge();
  }
  try {
    return await collect(raw, { max, tooLarge, drain: true });
  } catch (err) {
    discardRequest(raw, res);
    throw err;
  }
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
