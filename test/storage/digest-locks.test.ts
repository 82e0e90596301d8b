import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256, type Digest } from '../../src/lib/digest.js';
import { collect } from '../../src/lib/streams.js';
import { sweepBlob } from '../../src/maintenance/gc.js';
import type { Services } from '../../src/repos/services.js';
import { S3BlobStore } from '../../src/storage/blob/s3.js';
import type { BlobStore } from '../../src/storage/blob/types.js';
import { ingestStream } from '../../src/storage/ingest.js';
import { PostgresMetaStore } from '../../src/storage/meta/postgres.js';
import type { FileRec, MetaStore } from '../../src/storage/meta/types.js';
import { freshPgSchema, NO_POSTGRES, POSTGRES_URL, startS3, uniq, type TestS3 } from '../helpers/stores.js';

const HOUR = 3_600_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Publish and the gc sweep on real Postgres + S3 (s3rver): per-digest locks instead of one global
 * lock, and S3 calls outside the metadata transaction with marks that keep publish + gc of the
 * same digest safe.
 */
describe.skipIf(!POSTGRES_URL)(`per-digest locks on Postgres + S3${POSTGRES_URL ? '' : ` (${NO_POSTGRES})`}`, () => {
  let s3: TestS3;
  let schema: Awaited<ReturnType<typeof freshPgSchema>>;
  let meta: MetaStore;
  let blob: S3BlobStore;
  let temp: string;

  beforeAll(async () => {
    s3 = await startS3();
    schema = await freshPgSchema();
    meta = await PostgresMetaStore.open(schema.url, { poolSize: 6 });
    temp = await mkdtemp(join(tmpdir(), 'artifactapi-locks-'));
    blob = await S3BlobStore.open({
      endpoint: s3.endpoint, bucket: uniq('b').replace(/_/g, '-'), region: 'us-east-1', accessKey: s3.accessKey, secretKey: s3.secretKey,
      forcePathStyle: true, tempDir: temp,
    });
  });
  afterAll(async () => {
    await blob?.close();
    await meta?.close();
    await schema?.drop();
    await s3?.close();
    await rm(temp, { recursive: true, force: true });
  });

  const svcOf = (b: BlobStore) => ({ meta, blob: b }) as unknown as Services;
  const row = (path: string, d: Digest, size: number): FileRec => ({ repo: 'r', path, digest: d, size, source: 'local', fetchedAt: Date.now(), lastAccess: Date.now() });
  /** Publishes `body` with a row at `path`; the digest is not given up front, so S3 stages it and copies it into place. */
  const publishWithRow = (b: BlobStore, body: Buffer, path: string, hold?: Promise<void>) =>
    ingestStream({ meta, blob: b }, Readable.from([body]), {}, async (m, w) => {
      await hold;
      await m.files.put(row(path, w.digest, w.size));
    });
  /** Bytes in the bucket whose blob row was touched two hours ago and that no row references: a gc candidate. */
  async function oldUnreferenced(body: Buffer): Promise<Digest> {
    await ingestStream({ meta, blob }, Readable.from([body]));
    const d = sha256(body);
    await meta.blobs.remove(d);
    await meta.blobs.touch(d, body.length, Date.now() - 2 * HOUR);
    return d;
  }
  /** The invariant: a row's blob is in the store, whole. */
  async function rowsHaveBytes(path: string, body: Buffer): Promise<void> {
    const rec = await meta.files.get('r', path);
    if (!rec) return;
    expect(await blob.stat(rec.digest), `${path} points at a deleted blob`).not.toBeNull();
    expect((await collect(await blob.read(rec.digest))).equals(body)).toBe(true);
  }

  it('publishes of different digests, and a gc sweep of a third, do not wait for each other', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let held = true;
    const a = randomBytes(1000);
    // Publish A holds its transaction (inside it, after its digest's lock is taken) until released.
    const first = publishWithRow(blob, a, 'a', gate.then(() => { held = false; }));
    await sleep(300);
    const b = randomBytes(1000);
    const c = await oldUnreferenced(randomBytes(500));
    const t0 = Date.now();
    await Promise.race([
      Promise.all([publishWithRow(blob, b, 'b'), sweepBlob(svcOf(blob), c, Date.now() - HOUR)]),
      sleep(10_000).then(() => { throw new Error('publish B or the sweep queued behind publish A'); }),
    ]);
    expect(held).toBe(true); // A was still inside its transaction the whole time
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(await meta.files.get('r', 'b')).not.toBeNull();
    expect(await blob.stat(c)).toBeNull();
    release();
    await first;
    await rowsHaveBytes('a', a);
  });

  it('a publish that arrives while gc deletes the same bytes waits, then puts them back: never a row without its blob', async () => {
    const body = randomBytes(4000);
    const d = await oldUnreferenced(body);
    let deleting!: () => void;
    const inDelete = new Promise<void>((r) => (deleting = r));
    // gc's S3 DELETE is slow: it runs outside the transaction, so the publish gets its lock meanwhile.
    const slow = Object.create(blob) as BlobStore;
    slow.delete = async (x: Digest) => { deleting(); await sleep(500); return blob.delete(x); };
    const gc = sweepBlob(svcOf(slow), d, Date.now() - HOUR);
    await inDelete;
    const t0 = Date.now();
    await publishWithRow(blob, body, 'p1');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300); // it waited for the delete to finish
    expect(await gc).toBe(body.length);
    await rowsHaveBytes('p1', body);
    expect(await meta.files.get('r', 'p1')).not.toBeNull();
  });

  it('a whole gc deletion between a publish\'s upload and its transaction is seen, and the bytes are put back', async () => {
    const body = randomBytes(3000);
    const d = await oldUnreferenced(body);
    let swept: number | null = null;
    // The publish finds the bytes present (stage), then gc deletes them before the publish's transaction.
    const racing = Object.create(blob) as BlobStore;
    racing.stage = async (s, x, size) => {
      await blob.stage(s, x, size);
      if (swept === null) swept = await sweepBlob(svcOf(blob), d, Date.now() - HOUR);
    };
    await publishWithRow(racing, body, 'p2');
    expect(swept).toBe(body.length);
    await rowsHaveBytes('p2', body);
    expect(await meta.files.get('r', 'p2')).not.toBeNull();
  });

  it('publish and gc of the same digest racing many times leave no row pointing at a deleted blob', async () => {
    for (let i = 0; i < 12; i++) {
      const body = randomBytes(2000 + i);
      const d = await oldUnreferenced(body);
      const jitter = Object.create(blob) as BlobStore;
      jitter.delete = async (x: Digest) => { await sleep(Math.random() * 40); return blob.delete(x); };
      await Promise.all([
        sleep(Math.random() * 30).then(() => publishWithRow(blob, body, `race${i}`)),
        sleep(Math.random() * 30).then(() => sweepBlob(svcOf(jitter), d, Date.now() - HOUR)),
      ]);
      expect(await meta.files.get('r', `race${i}`)).not.toBeNull();
      await rowsHaveBytes(`race${i}`, body);
    }
  });
});
