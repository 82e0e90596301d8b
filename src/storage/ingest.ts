import { Readable } from 'node:stream';
import { sha256 } from '../lib/digest.js';
import { hashInto, type Hashed, type SpoolOptions } from '../lib/spool.js';
import type { Staged } from './blob/types.js';
import type { MetaStore } from './meta/types.js';
import type { Stores } from './open.js';

/** Content that has streamed in and verified, waiting to be published under its digest. */
export interface Written extends Hashed {
  staged: Staged;
}

/** Work done in the publishing transaction itself, e.g. writing the row that references the blob. */
export type InPublish = (m: MetaStore, w: Written) => Promise<unknown>;

/**
 * Makes written content visible in the blob store. Touching the blob row and the
 * commit happen in one exclusive metadata transaction, and gc re-checks and
 * deletes in one too: a blob being published is never reaped, even by a gc
 * running in another process.
 */
export async function publish(stores: Pick<Stores, 'meta' | 'blob'>, w: Written, then?: InPublish): Promise<void> {
  // Slow work (uploads, server-side copies) first, so the exclusive transaction stays short.
  await stores.blob.stage?.(w.staged, w.digest, w.size);
  await stores.meta.tx(async (m) => {
    await m.blobs.touch(w.digest, w.size);
    await stores.blob.commit(w.staged, w.digest, w.size);
    await then?.(m, w);
  });
}

/** Streams `src` straight into the blob store (hashed and verified on the way), then publishes it. */
export async function ingestStream(stores: Pick<Stores, 'meta' | 'blob'>, src: Readable, o: SpoolOptions = {}, then?: InPublish): Promise<Written> {
  const writer = stores.blob.writer(o.expect?.digest);
  let hashed: Hashed;
  try {
    hashed = await hashInto(src, writer.stream, o);
  } catch (err) {
    await stores.blob.discard(writer.staged).catch(() => {});
    throw err;
  }
  const w = { ...hashed, staged: writer.staged };
  try {
    await publish(stores, w, then);
  } catch (err) {
    await stores.blob.discard(w.staged).catch(() => {});
    throw err;
  }
  return w;
}

/** A small document already in memory: its digest is known up front, so S3 writes it in place. */
export function ingestBuffer(stores: Pick<Stores, 'meta' | 'blob'>, buf: Buffer, then?: InPublish): Promise<Written> {
  return ingestStream(stores, Readable.from([buf]), { expect: { digest: sha256(buf), size: buf.length } }, then);
}
