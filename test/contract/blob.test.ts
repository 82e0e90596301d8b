import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sha256, type Digest } from '../../src/lib/digest.js';
import { hashInto, spool } from '../../src/lib/spool.js';
import { FsBlobStore } from '../../src/storage/blob/fs.js';
import { S3BlobStore } from '../../src/storage/blob/s3.js';
import type { BlobStore, Staged } from '../../src/storage/blob/types.js';
import { startS3, uniq, type TestS3 } from '../helpers/stores.js';

/** One BlobStore contract, run against every adapter. S3 runs against s3rver started here (no env needed). */
interface BlobFactory {
  name: string;
  skip?: string;
  setup?(): Promise<void>;
  teardown?(): Promise<void>;
  open(): Promise<{ store: BlobStore; cleanup(): Promise<void> }>;
}

let s3: TestS3 | undefined;
const factories: BlobFactory[] = [
  {
    name: 'fs',
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'artifactapi-blob-'));
      const store = await FsBlobStore.open(join(dir, 'cas'));
      return { store, cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 's3 (s3rver)',
    async setup() { s3 = await startS3(); },
    async teardown() { await s3?.close(); },
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'artifactapi-blob-'));
      const store = await S3BlobStore.open({
        endpoint: s3!.endpoint, bucket: uniq('b').replace(/_/g, '-'), region: 'us-east-1', accessKey: s3!.accessKey,
        secretKey: s3!.secretKey, forcePathStyle: true, tempDir: join(dir, 'tmp'), partSize: 5 * 1024 * 1024,
      });
      return { store, cleanup: async () => { await store.close?.(); await rm(dir, { recursive: true, force: true }); } };
    },
  },
  {
    // A real S3 / MinIO when configured: ARTIFACTAPI_TEST_S3_ENDPOINT (+ _ACCESS_KEY, _SECRET_KEY, _REGION).
    name: 's3 (ARTIFACTAPI_TEST_S3_ENDPOINT)',
    skip: process.env.ARTIFACTAPI_TEST_S3_ENDPOINT ? undefined : 'ARTIFACTAPI_TEST_S3_ENDPOINT is not set (s3rver covers S3 above)',
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'artifactapi-blob-'));
      const store = await S3BlobStore.open({
        endpoint: process.env.ARTIFACTAPI_TEST_S3_ENDPOINT, bucket: uniq('b').replace(/_/g, '-'),
        region: process.env.ARTIFACTAPI_TEST_S3_REGION ?? 'us-east-1', accessKey: process.env.ARTIFACTAPI_TEST_S3_ACCESS_KEY,
        secretKey: process.env.ARTIFACTAPI_TEST_S3_SECRET_KEY, forcePathStyle: true, tempDir: join(dir, 'tmp'), partSize: 5 * 1024 * 1024,
      });
      return { store, cleanup: async () => { await store.close?.(); await rm(dir, { recursive: true, force: true }); } };
    },
  },
];

const read = async (s: Readable) => { const parts: Buffer[] = []; for await (const c of s) parts.push(c as Buffer); return Buffer.concat(parts); };
const collect = async <T>(it: AsyncIterable<T>) => { const out: T[] = []; for await (const x of it) out.push(x); return out; };

/** Bytes in 64 KiB chunks, as a network body arrives. */
function* chunks(body: Buffer) {
  for (let i = 0; i < body.length; i += 65536) yield body.subarray(i, i + 65536);
}

/** Staging content still around (any age): what gc's staging sweep would find. */
async function leftovers(store: BlobStore) {
  const tmp = (await import('node:fs/promises')).readdir(store.tempDir).catch(() => [] as string[]);
  const staged = await collect(store.sweepStaging(Date.now() + 3_600_000, true));
  return [...(await tmp), ...staged.map((s) => s.name)];
}

/** Publishes staged content as storage/ingest.ts does: stage (outside the transaction), commit (inside), discard leftovers (after). */
async function publishStaged(store: BlobStore, staged: Staged, d: Digest, size: number): Promise<void> {
  await store.stage?.(staged, d, size);
  await store.commit(staged, d, size);
  await store.discard(staged);
}

/** Spools bytes into the store's temp dir and publishes them: the path every writer takes. */
async function put(store: BlobStore, body: Buffer): Promise<Digest> {
  const s = await spool(Readable.from([body]), store.tempDir);
  await publishStaged(store, { file: s.path }, s.digest, s.size);
  expect(existsSync(s.path)).toBe(false); // the temp file is consumed
  return s.digest;
}

for (const f of factories) {
  describe.skipIf(!!f.skip)(`BlobStore contract: ${f.name}${f.skip ? ` (skipped: ${f.skip})` : ''}`, () => {
    let store: BlobStore;
    let cleanup: () => Promise<void>;
    beforeAll(async () => f.setup?.());
    afterAll(async () => f.teardown?.());
    beforeEach(async () => ({ store, cleanup } = await f.open()));
    afterEach(async () => cleanup());

    it('commits, stats and reads a blob', async () => {
      const body = randomBytes(100_000);
      const dg = await put(store, body);
      expect(dg).toBe(sha256(body));
      const st = await store.stat(dg);
      expect(st?.size).toBe(body.length);
      expect(st?.digest).toBe(dg);
      expect(st?.createdAt).toBeInstanceOf(Date);
      expect(Date.now() - st!.createdAt.getTime()).toBeLessThan(120_000);
      expect((await read(await store.read(dg))).equals(body)).toBe(true);
    });

    it('stores an empty blob', async () => {
      const dg = await put(store, Buffer.alloc(0));
      expect((await store.stat(dg))?.size).toBe(0);
      expect((await read(await store.read(dg))).length).toBe(0);
    });

    it('commits a large blob (multipart on s3) and reads ranges of it', async () => {
      const body = randomBytes(12 * 1024 * 1024 + 12345);
      const dg = await put(store, body);
      expect((await store.stat(dg))?.size).toBe(body.length);
      expect((await read(await store.read(dg))).equals(body)).toBe(true);
      const ranges = [[0, 0], [0, 99], [5 * 1024 * 1024 - 10, 5 * 1024 * 1024 + 10], [body.length - 7, body.length - 1]];
      for (const [start, end] of ranges) {
        expect((await read(await store.read(dg, { start, end }))).equals(body.subarray(start, end + 1))).toBe(true);
      }
    });

    it('answers null / BLOB_UNKNOWN for a missing blob', async () => {
      const missing = sha256('missing');
      expect(await store.stat(missing)).toBeNull();
      await expect(store.read(missing).then(read)).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
    });

    it('keeps the first copy when the same content is committed twice', async () => {
      const body = randomBytes(1000);
      const dg = await put(store, body);
      const again = join(store.tempDir, 'dup');
      await writeFile(again, body);
      await publishStaged(store, { file: again }, dg, body.length);
      expect(existsSync(again)).toBe(false);
      expect((await read(await store.read(dg))).equals(body)).toBe(true);
      expect((await collect(store.list())).filter((b) => b.digest === dg)).toHaveLength(1);
    });

    it('stage (when offered) uploads ahead and keeps the temp file; staging again restores a blob removed in between', async () => {
      const body = randomBytes(50_000);
      const s = await spool(Readable.from([body]), store.tempDir);
      if (store.stage) {
        await store.stage({ file: s.path }, s.digest, s.size);
        expect(existsSync(s.path)).toBe(true);
        expect((await store.stat(s.digest))?.size).toBe(body.length);
        await store.delete(s.digest); // a gc reaped an old copy between stage and commit: the publisher sees it and stages again
      }
      await publishStaged(store, { file: s.path }, s.digest, s.size);
      expect(existsSync(s.path)).toBe(false);
      expect((await read(await store.read(s.digest))).equals(body)).toBe(true);
    });

    it('writer: streams new content in, visible only once committed; unknown digest goes through staging', async () => {
      for (const body of [randomBytes(70_000), randomBytes(11 * 1024 * 1024 + 3)]) {
        const dg = sha256(body);
        const w = store.writer();
        const h = await hashInto(Readable.from(chunks(body)), w.stream);
        expect(h).toEqual({ digest: dg, size: body.length });
        expect(await store.stat(dg)).toBeNull(); // not visible before commit
        await publishStaged(store, w.staged, dg, body.length);
        expect((await read(await store.read(dg))).equals(body)).toBe(true);
        expect(await leftovers(store)).toEqual([]); // staging consumed
      }
    });

    it('writer with the expected digest: a mismatch is refused before anything becomes visible', async () => {
      const body = randomBytes(6 * 1024 * 1024 + 5); // more than one multipart part on s3
      const claimed = sha256('something else');
      const w = store.writer(claimed);
      await expect(hashInto(Readable.from(chunks(body)), w.stream, { expect: { digest: claimed } })).rejects.toMatchObject({ code: 'DIGEST_INVALID' });
      await store.discard(w.staged);
      expect(await store.stat(claimed)).toBeNull();
      expect(await store.stat(sha256(body))).toBeNull();
      expect(await collect(store.list())).toEqual([]);
      expect(await leftovers(store)).toEqual([]);

      const ok = store.writer(sha256(body));
      await hashInto(Readable.from(chunks(body)), ok.stream, { expect: { digest: sha256(body) } });
      await publishStaged(store, ok.staged, sha256(body), body.length);
      expect((await read(await store.read(sha256(body)))).equals(body)).toBe(true);
    });

    it('a blob removed after stage (a gc reaping an old copy): staging again places staging content again, refuses in-place content', async () => {
      const body = randomBytes(40_000);
      const dg = sha256(body);
      const staged = store.writer();
      await hashInto(Readable.from([body]), staged.stream);
      await store.stage?.(staged.staged, dg, body.length);
      await store.delete(dg);
      await publishStaged(store, staged.staged, dg, body.length);
      expect((await read(await store.read(dg))).equals(body)).toBe(true);

      const other = randomBytes(30_000);
      const inPlace = store.writer(sha256(other));
      await hashInto(Readable.from([other]), inPlace.stream, { expect: { digest: sha256(other) } });
      await store.stage?.(inPlace.staged, sha256(other), other.length);
      if (!store.stage) return; // the filesystem store publishes by rename inside commit: nothing to lose in between
      await store.delete(sha256(other));
      await expect(store.stage(inPlace.staged, sha256(other), other.length)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    });

    it('writer: a source that fails midway leaves nothing behind', async () => {
      const w = store.writer();
      const failing = Readable.from((async function* () {
        yield randomBytes(6 * 1024 * 1024);
        throw new Error('client went away');
      })());
      await expect(hashInto(failing, w.stream)).rejects.toThrow('client went away');
      await store.discard(w.staged);
      expect(await collect(store.list())).toEqual([]);
      expect(await leftovers(store)).toEqual([]);
    });

    it('parts: a resumable upload keeps its parts in order until dropped; a failed part keeps nothing', async () => {
      const session = `s-${Date.now()}`;
      expect(await store.parts.list(session)).toEqual([]);
      const a = randomBytes(6 * 1024 * 1024 + 1);
      const b = randomBytes(1000);
      for (const [offset, body] of [[0, a], [a.length, b]] as const) {
        const w = await store.parts.open(session, offset);
        await hashInto(Readable.from(chunks(body)), w.stream);
      }
      const failed = await store.parts.open(session, a.length + b.length);
      await expect(hashInto(Readable.from((async function* () { yield b; throw new Error('cut'); })()), failed.stream)).rejects.toThrow('cut');
      await store.discard(failed.staged);
      const parts = await store.parts.list(session);
      expect(parts.map((p) => [p.offset, p.size])).toEqual([[0, a.length], [a.length, b.length]]);
      const joined = Buffer.concat([await read(await store.parts.read(parts[0])), await read(await store.parts.read(parts[1]))]);
      expect(joined.equals(Buffer.concat([a, b]))).toBe(true);
      expect((await collect(store.parts.sessions())).map((x) => [x.session, x.bytes])).toEqual([[session, a.length + b.length]]);
      // A one-part upload commits from its part as it is.
      await publishStaged(store, parts[1].staged, sha256(b), b.length);
      expect((await read(await store.read(sha256(b)))).equals(b)).toBe(true);
      await store.parts.drop(session);
      expect(await store.parts.list(session)).toEqual([]);
      expect(await collect(store.parts.sessions())).toEqual([]);
    });

    it('lists every blob with its size, and deletes', async () => {
      const bodies = Array.from({ length: 25 }, (_, i) => randomBytes(10 + i));
      const digests: Digest[] = [];
      for (const b of bodies) digests.push(await put(store, b));
      const listed = await collect(store.list());
      expect(listed.map((b) => b.digest).sort()).toEqual([...digests].sort());
      for (const b of listed) expect(b.size).toBe(bodies[digests.indexOf(b.digest)].length);
      await store.delete(digests[0]);
      await store.delete(digests[0]); // deleting twice is fine
      await store.delete(sha256('never there'));
      expect(await store.stat(digests[0])).toBeNull();
      expect((await collect(store.list())).length).toBe(24);
    });
  });
}

describe('S3BlobStore: content above copyLimit is moved into place by streaming, not CopyObject', () => {
  let s3srv: TestS3;
  beforeAll(async () => { s3srv = await startS3(); });
  afterAll(async () => s3srv?.close());

  it('stages and commits through the streamed copy', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'artifactapi-blob-'));
    const store = await S3BlobStore.open({
      endpoint: s3srv.endpoint, bucket: uniq('b').replace(/_/g, '-'), region: 'us-east-1', accessKey: s3srv.accessKey,
      secretKey: s3srv.secretKey, forcePathStyle: true, tempDir: join(dir, 'tmp'), copyLimit: 1000,
    });
    try {
      const body = randomBytes(300_000);
      const w = store.writer();
      await hashInto(Readable.from(chunks(body)), w.stream);
      await publishStaged(store, w.staged, sha256(body), body.length);
      expect((await read(await store.read(sha256(body)))).equals(body)).toBe(true);
      expect(await leftovers(store)).toEqual([]);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
