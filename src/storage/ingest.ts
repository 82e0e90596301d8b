import { Readable } from 'node:stream';
import { sha256, type Digest } from '../lib/digest.js';
import { AppError } from '../lib/errors.js';
import { hashInto, type Hashed, type SpoolOptions } from '../lib/spool.js';
import type { Staged } from './blob/types.js';
import type { BlobDeletion, MetaStore } from './meta/types.js';
import type { Stores } from './open.js';

/** Content that has streamed in and verified, waiting to be published under its digest. */
export interface Written extends Hashed {
  staged: Staged;
  /** The digest's deletion state read before these bytes were written (see `publish`). */
  before?: BlobDeletion;
}

/** Work done in the publishing transaction itself, e.g. writing the row that references the blob. */
export type InPublish = (m: MetaStore, w: Written) => Promise<unknown>;

type Pair = Pick<Stores, 'meta' | 'blob'>;

/** How long a publisher waits for a gc deletion of the same bytes to finish (one DELETE call). */
const DELETE_WAIT_MS = 15_000;
const ATTEMPTS = 4;

/**
 * A digest's deletion state, read before anything establishes its bytes; waits out a gc deletion
 * under way (its delete may land at any moment).
 */
export async function deletionState(meta: MetaStore, d: Digest): Promise<BlobDeletion> {
  for (let pause = 5, waited = 0; ; waited += pause, pause = Math.min(pause * 2, 250)) {
    const s = await meta.blobs.deletion(d);
    if (!s.deleting) return s;
    if (waited >= DELETE_WAIT_MS) throw new AppError('UNAVAILABLE', `blob ${d} is being deleted by gc; try again`);
    await new Promise((r) => setTimeout(r, pause));
  }
}

/**
 * Publishes under a digest, safe against a gc of the same digest in any process, with no
 * network call inside the metadata transaction. gc deletes bytes in three steps: mark the blob
 * row "deleting" under a new token (a transaction holding the digest's lock, only if no row
 * references it), delete the bytes, mark it "gone". A publisher:
 * 1. reads the deletion state (`before`), waiting out a deletion under way;
 * 2. makes sure the bytes are in place (`ensure`: upload or copy; outside any transaction);
 * 3. in a transaction holding the digest's lock: if the state is still `before`, no delete ran
 *    since step 1, so the bytes of step 2 are there; it touches the blob and writes its rows, after
 *    which no gc can begin deleting them (it re-checks references under the same lock). If a
 *    deletion began meanwhile, it starts over from 1 (bytes the store wrote in place may be
 *    gone: then `ensure` fails with UNAVAILABLE, and nothing is recorded).
 */
async function underDigest(stores: Pair, d: Digest, size: number, before: BlobDeletion | undefined,
  ensure: () => Promise<void>, inTx: (m: MetaStore) => Promise<unknown>): Promise<void> {
  let seen = before ?? (await deletionState(stores.meta, d));
  for (let attempt = 1; ; attempt++) {
    await ensure();
    const done = await stores.meta.tx(async (m) => {
      const now = await m.blobs.deletion(d);
      if (now.deleting || now.token !== seen.token) return false;
      await m.blobs.touch(d, size);
      await inTx(m);
      return true;
    }, { lock: [d] });
    if (done) return;
    if (attempt >= ATTEMPTS) throw new AppError('UNAVAILABLE', `blob ${d} was deleted by gc while being published; retry`);
    seen = await deletionState(stores.meta, d);
  }
}

/** Makes written content visible in the blob store, with `then` run in the same transaction (see underDigest). */
export async function publish(stores: Pair, w: Written, then?: InPublish): Promise<void> {
  await underDigest(stores, w.digest, w.size, w.before,
    // Slow work (uploads, server-side copies) outside the transaction; commit itself is local (a rename, or nothing).
    async () => stores.blob.stage?.(w.staged, w.digest, w.size),
    async (m) => {
      await stores.blob.commit(w.staged, w.digest, w.size);
      await then?.(m, w);
    });
  // Leftover staging content (an S3 staging object) goes after the transaction.
  await stores.blob.discard(w.staged).catch(() => {});
}

/** Points rows at a blob already in the store (a cross-repo mount, a recorded upload): checked present, then `then`. */
export async function linkBlob<T>(stores: Pair, d: Digest, size: number, then: (m: MetaStore) => Promise<T>): Promise<T> {
  let out!: T;
  await underDigest(stores, d, size, undefined,
    async () => {
      if (!(await stores.blob.stat(d))) throw new AppError('BLOB_UNKNOWN', `blob ${d} not in store`);
    },
    async (m) => { out = await then(m); });
  return out;
}

/** Streams `src` straight into the blob store (hashed and verified on the way), then publishes it. */
export async function ingestStream(stores: Pair, src: Readable, o: SpoolOptions = {}, then?: InPublish): Promise<Written> {
  // Read before the first byte: a store may write a known digest in place (see underDigest).
  const before = o.expect?.digest ? await deletionState(stores.meta, o.expect.digest) : undefined;
  const writer = stores.blob.writer(o.expect?.digest);
  let hashed: Hashed;
  try {
    hashed = await hashInto(src, writer.stream, o);
  } catch (err) {
    await stores.blob.discard(writer.staged).catch(() => {});
    throw err;
  }
  const w: Written = { ...hashed, staged: writer.staged, before };
  try {
    await publish(stores, w, then);
  } catch (err) {
    await stores.blob.discard(w.staged).catch(() => {});
    throw err;
  }
  return w;
}

/** A small document already in memory: its digest is known up front, so S3 writes it in place. */
export function ingestBuffer(stores: Pair, buf: Buffer, then?: InPublish): Promise<Written> {
  return ingestStream(stores, Readable.from([buf]), { expect: { digest: sha256(buf), size: buf.length } }, then);
}
