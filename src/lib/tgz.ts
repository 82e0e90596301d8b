import { pipeline, Transform, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { AppError } from './errors.js';

export interface TgzLimits {
  /** Entries read before giving up. */
  maxEntries: number;
  /** Bytes of one selected entry held in memory. */
  maxEntryBytes: number;
  /** Decompressed bytes of the whole archive (headers, skipped entries and padding count too): a gzip bomb stops here. */
  maxTotalBytes: number;
}

export const DEFAULT_TGZ_LIMITS: TgzLimits = { maxEntries: 10_000, maxEntryBytes: 1024 * 1024, maxTotalBytes: 1024 * 1024 * 1024 };

/**
 * Streams a .tar.gz and returns the entries `want` selects (regular files only), in memory and
 * bounded; every other entry is skipped without being held. `stopWhen` ends the read early once
 * everything needed is in hand. Malformed input is a 400 naming `what`.
 */
export async function readTgzEntries(src: Readable, want: (name: string) => boolean, o: {
  what: string; limits?: Partial<TgzLimits>; stopWhen?: (found: Map<string, Buffer>) => boolean;
}): Promise<Map<string, Buffer>> {
  const limits = { ...DEFAULT_TGZ_LIMITS, ...o.limits };
  const extract = tar.extract();
  const found = new Map<string, Buffer>();
  let failure: Error | undefined;
  // Counted as it leaves gunzip, so zeros after the last entry (which no header declares) are bounded too.
  let unpacked = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      unpacked += chunk.length;
      if (unpacked > limits.maxTotalBytes) done(new AppError('TOO_LARGE', `${o.what} unpacks to more than ${limits.maxTotalBytes} bytes`));
      else done(null, chunk);
    },
  });
  pipeline(src, createGunzip(), counter, extract, (err) => { if (err) failure = err; });
  let entries = 0;
  let total = 0;
  try {
    for await (const entry of extract) {
      const h = entry.header;
      if (++entries > limits.maxEntries) throw new AppError('BAD_REQUEST', `${o.what} has more than ${limits.maxEntries} entries`);
      total += h.size ?? 0;
      if (total > limits.maxTotalBytes) throw new AppError('TOO_LARGE', `${o.what} unpacks to more than ${limits.maxTotalBytes} bytes`);
      if ((h.type === 'file' || h.type === 'contiguous-file') && want(h.name)) {
        if ((h.size ?? 0) > limits.maxEntryBytes) throw new AppError('BAD_REQUEST', `${h.name} in ${o.what} is larger than ${limits.maxEntryBytes} bytes`);
        const chunks: Buffer[] = [];
        for await (const c of entry) chunks.push(c as Buffer);
        found.set(h.name, Buffer.concat(chunks));
        if (o.stopWhen?.(found)) break;
      } else {
        entry.resume();
      }
    }
  } catch (err) {
    if (err instanceof AppError) throw err;
    if (failure instanceof AppError) throw failure;
    throw new AppError('BAD_REQUEST', `${o.what} is not a valid .tar.gz: ${(failure ?? (err as Error)).message}`);
  } finally {
    extract.destroy();
    src.destroy();
  }
  if (failure instanceof AppError) throw failure;
  if (failure && !o.stopWhen?.(found)) throw new AppError('BAD_REQUEST', `${o.what} is not a valid .tar.gz: ${failure.message}`);
  return found;
}
