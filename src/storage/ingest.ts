import type { Readable } from 'node:stream';
import { spool, type SpoolOptions, type Spooled } from '../lib/spool.js';
import type { MetaStore } from './meta/types.js';
import type { Stores } from './open.js';

/** Work done in the publishing transaction itself, e.g. writing the row that references the blob. */
export type InPublish = (m: MetaStore, s: Spooled) => Promise<unknown>;

/**
 * Moves a spooled temp file into the blob store. Touching the blob row and the
 * commit happen in one exclusive metadata transaction, and gc re-checks and
 * deletes in one too: a blob being published is never reaped, even by a gc
 * running in another process.
 */
export async function publishSpooled(stores: Pick<Stores, 'meta' | 'blob'>, s: Spooled, then?: InPublish): Promise<void> {
  // Remote stores upload first, so the exclusive transaction does not span a long transfer.
  await stores.blob.stage?.(s.path, s.digest, s.size);
  await stores.meta.tx(async (m) => {
    await m.blobs.touch(s.digest, s.size);
    await stores.blob.commit(s.path, s.digest, s.size);
    await then?.(m, s);
  });
}

/** Streams `src` into the store: hash while writing a temp file, verify, publish. */
export async function ingestStream(stores: Pick<Stores, 'meta' | 'blob'>, src: Readable, o: SpoolOptions = {}, then?: InPublish): Promise<Spooled> {
  const s = await spool(src, stores.blob.tempDir, o);
  try {
    await publishSpooled(stores, s, then);
  } catch (err) {
    const { rm } = await import('node:fs/promises');
    await rm(s.path, { force: true });
    throw err;
  }
  return s;
}
