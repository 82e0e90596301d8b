import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256, type Digest } from '../../src/lib/digest.js';
import { PostgresMetaStore } from '../../src/storage/meta/postgres.js';
import { SqliteMetaStore } from '../../src/storage/meta/sqlite.js';
import type { FileRec, MetaStore } from '../../src/storage/meta/types.js';
import { freshPgSchema, NO_POSTGRES, POSTGRES_URL } from '../helpers/stores.js';

/** One MetaStore contract, run against every adapter. */
interface MetaFactory {
  name: string;
  skip?: string;
  /** A fresh empty store; `peer()` opens a second, independent store on the same data (another process's view). */
  open(): Promise<{ store: MetaStore; peer?: () => Promise<MetaStore>; cleanup(): Promise<void> }>;
}

const factories: MetaFactory[] = [
  {
    name: 'sqlite',
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'artifactapi-meta-'));
      const store = SqliteMetaStore.open(join(dir, 'a.db'));
      // No in-process peer: better-sqlite3 is synchronous, so a second connection's BEGIN IMMEDIATE
      // would block this event loop; cross-process exclusion is SQLite's own file lock.
      return { store, cleanup: async () => { await store.close(); await rm(dir, { recursive: true, force: true }); } };
    },
  },
  {
    name: 'postgres',
    skip: POSTGRES_URL ? undefined : NO_POSTGRES,
    async open() {
      const schema = await freshPgSchema();
      const store = await PostgresMetaStore.open(schema.url, { poolSize: 4 });
      const peers: MetaStore[] = [];
      return {
        store,
        peer: async () => { const p = await PostgresMetaStore.open(schema.url, { poolSize: 4 }); peers.push(p); return p; },
        cleanup: async () => { for (const p of peers) await p.close(); await store.close(); await schema.drop(); },
      };
    },
  },
];

const d = (s: string) => sha256(s) as Digest;
const file = (repo: string, path: string, over: Partial<FileRec> = {}): FileRec => ({
  repo, path, digest: d(path), size: path.length, source: 'local', fetchedAt: 1000, lastAccess: 1000, ...over,
});
const collect = async <T>(it: AsyncIterable<T>) => { const out: T[] = []; for await (const x of it) out.push(x); return out; };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const f of factories) {
  describe.skipIf(!!f.skip)(`MetaStore contract: ${f.name}${f.skip ? ` (skipped: ${f.skip})` : ''}`, () => {
    let store: MetaStore;
    let peer: (() => Promise<MetaStore>) | undefined;
    let cleanup: () => Promise<void>;
    beforeEach(async () => {
      ({ store, peer, cleanup } = await f.open());
    });
    afterEach(async () => cleanup());

    it('pings and migrates idempotently', async () => {
      await store.ping();
      if (peer) await (await peer()).ping(); // a second open on the same database re-runs no migration
    });

    it('stores, updates, lists and removes repos', async () => {
      expect(await store.repos.get('a')).toBeNull();
      await store.repos.put({ name: 'b', format: 'generic', kind: 'remote', upstream: 'http://x/', options: { metadata_ttl: 5 }, createdAt: 1 });
      await store.repos.put({ name: 'a', format: 'npm', kind: 'virtual', members: ['b'], options: {}, createdAt: 2 });
      expect(await store.repos.get('b')).toEqual({ name: 'b', format: 'generic', kind: 'remote', upstream: 'http://x/', members: undefined, options: { metadata_ttl: 5 }, createdAt: 1 });
      expect((await store.repos.list()).map((r) => r.name)).toEqual(['a', 'b']);
      await store.repos.put({ name: 'b', format: 'generic', kind: 'remote', upstream: 'http://y/', options: {}, createdAt: 99 });
      const b = await store.repos.get('b');
      expect(b?.upstream).toBe('http://y/');
      expect(b?.createdAt).toBe(1); // createdAt survives an update
      await store.repos.remove('b');
      expect(await store.repos.get('b')).toBeNull();
    });

    it('round-trips every file field and upserts by (repo, path)', async () => {
      const rec = file('r', 'a/b.bin', {
        size: 5_000_000_000, contentType: 'application/x-thing', source: 'remote', upstreamEtag: '"e"',
        upstreamLastModified: 'Wed, 21 Oct 2015 07:28:00 GMT', fetchedAt: 1_700_000_000_123, lastAccess: 1_700_000_000_456,
        meta: { nested: { a: [1, 2] }, s: 'ü' },
      });
      await store.files.put(rec);
      expect(await store.files.get('r', 'a/b.bin')).toEqual(rec);
      expect(await store.files.get('other', 'a/b.bin')).toBeNull();
      await store.files.put({ ...rec, digest: d('new'), size: 7, meta: undefined, contentType: undefined });
      const got = await store.files.get('r', 'a/b.bin');
      expect(got?.digest).toBe(d('new'));
      expect(got?.meta).toBeUndefined();
      expect(got?.contentType).toBeUndefined();
      await store.files.remove('r', 'a/b.bin');
      expect(await store.files.get('r', 'a/b.bin')).toBeNull();
    });

    it('lists files in path order, filtered by prefix, across pages', async () => {
      const paths: string[] = [];
      for (let i = 0; i < 1203; i++) paths.push(`p/${String(i).padStart(5, '0')}`);
      paths.push('q/x', 'p', 'pa/z', 'P/upper', 'p/%_like');
      await store.tx(async (m) => { for (const p of paths) await m.files.put(file('r', p)); });
      await store.files.put(file('other', 'p/00001'));
      const all = (await collect(store.files.list('r'))).map((x) => x.path);
      expect(all).toEqual([...paths].sort()); // byte order, like SQLite's BINARY collation
      const under = (await collect(store.files.list('r', 'p/'))).map((x) => x.path);
      expect(under).toHaveLength(1204);
      expect(under[0]).toBe('p/%_like');
      expect(under.every((p) => p.startsWith('p/'))).toBe(true);
      expect((await collect(store.files.list('r', 'p/%'))).map((x) => x.path)).toEqual(['p/%_like']); // no LIKE wildcards
      expect((await collect(store.files.list('r', 'nothing/'))).length).toBe(0);
    });

    it('lists a prefix exactly at its edges, non-ASCII included', async () => {
      const paths = ['é/1', 'é0', 'éa/2', 'ê/3', 'z\u{10FFFF}/4', 'z\u{10FFFF}', '\u{1F600}/x', '\u{1F601}', 'ab', 'ab/c', 'ac'];
      await store.tx(async (m) => { for (const p of paths) await m.files.put(file('r', p)); });
      const list = async (prefix: string) => (await collect(store.files.list('r', prefix))).map((x) => x.path);
      expect(await list('é')).toEqual(['é/1', 'é0', 'éa/2']);
      expect(await list('é/')).toEqual(['é/1']);
      expect(await list('\u{1F600}')).toEqual(['\u{1F600}/x']);
      expect(await list('z\u{10FFFF}')).toEqual(['z\u{10FFFF}', 'z\u{10FFFF}/4']);
      expect(await list('ab')).toEqual(['ab', 'ab/c']);
    });

    it('finds files by digest, sums sizes, orders by last access and touches in batches', async () => {
      await store.files.put(file('r', 'a', { digest: d('x'), size: 10, lastAccess: 300 }));
      await store.files.put(file('r', 'b', { digest: d('x'), size: 20, lastAccess: 100 }));
      await store.files.put(file('s', 'c', { digest: d('x'), size: 40, lastAccess: 200 }));
      expect((await store.files.byDigest(d('x'))).map((x) => `${x.repo}/${x.path}`).sort()).toEqual(['r/a', 'r/b', 's/c']);
      expect(await store.files.totalSize('r')).toBe(30);
      expect(await store.files.totalSize('none')).toBe(0);
      expect((await store.files.lru('r', 10)).map((x) => x.path)).toEqual(['b', 'a']);
      await store.files.touch([{ repo: 'r', path: 'b', at: 500 }, { repo: 'r', path: 'a', at: 50 }, { repo: 'r', path: 'missing', at: 1 }]);
      expect((await store.files.get('r', 'b'))?.lastAccess).toBe(500);
      expect((await store.files.get('r', 'a'))?.lastAccess).toBe(300); // never moves backwards
      expect((await store.files.lru('r', 1)).map((x) => x.path)).toEqual(['a']);
      await store.files.removeRepo('r');
      expect(await store.files.totalSize('r')).toBe(0);
      expect(await store.files.get('s', 'c')).not.toBeNull();
    });

    it('tracks blobs and reports unreferenced ones past the grace time', async () => {
      await store.blobs.touch(d('old'), 3, 1000);
      await store.blobs.touch(d('fresh'), 4, 5000);
      await store.blobs.touch(d('used'), 5, 1000);
      await store.files.put(file('r', 'u', { digest: d('used') }));
      expect(await store.blobs.unreferenced(2000)).toEqual([d('old')]);
      expect((await store.blobs.unreferenced(6000)).sort()).toEqual([d('old'), d('fresh')].sort());
      await store.blobs.touch(d('old'), 3, 500); // touch never moves last_touched backwards
      expect((await store.blobs.get(d('old')))?.lastTouched).toBe(1000);
      await store.blobs.touch(d('old'), 3, 9000);
      expect(await store.blobs.unreferenced(2000)).toEqual([]);
      expect(await store.blobs.get(d('nope'))).toBeNull();
      expect((await collect(store.blobs.list())).map((b) => b.digest).sort()).toEqual([d('old'), d('fresh'), d('used')].sort());
      await store.blobs.remove(d('old'));
      expect(await store.blobs.get(d('old'))).toBeNull();
    });

    it('lists more than a page of blobs', async () => {
      await store.tx(async (m) => { for (let i = 0; i < 1001; i++) await m.blobs.touch(d(`b${i}`), i, 1); });
      const all = await collect(store.blobs.list());
      expect(all).toHaveLength(1001);
      expect(new Set(all.map((b) => b.digest)).size).toBe(1001);
    });

    it('keeps upload sessions and expires them by age', async () => {
      await store.sessions.put({ id: 's1', repo: 'r', scope: 'img', startedAt: 100 });
      await store.sessions.put({ id: 's2', repo: 'r', scope: 'img', startedAt: 900 });
      await store.sessions.put({ id: 's1', repo: 'x', scope: 'y', startedAt: 1 }); // first write wins
      expect(await store.sessions.get('s1')).toEqual({ id: 's1', repo: 'r', scope: 'img', startedAt: 100 });
      expect((await store.sessions.olderThan(500)).map((s) => s.id)).toEqual(['s1']);
      expect(await store.sessions.count('r')).toBe(2);
      expect(await store.sessions.count('x')).toBe(0);
      await store.sessions.remove('s1');
      expect(await store.sessions.get('s1')).toBeNull();
      expect(await store.sessions.get('zz')).toBeNull();
    });

    it('marks a gc deletion: under way, then gone (a tombstone readers skip), revived by a touch, purged', async () => {
      const b = d('doomed');
      expect(await store.blobs.deletion(b)).toEqual({ token: null, deleting: false });
      await store.blobs.touch(b, 7, 1000);
      await store.blobs.beginDelete(b, 7, 'tok1');
      expect(await store.blobs.deletion(b)).toEqual({ token: 'tok1', deleting: true });
      expect(await store.blobs.get(b)).toMatchObject({ digest: b, size: 7, deleting: true });
      expect(await store.blobs.unreferenced(2000)).toContain(b);
      // A touch never revives a deletion under way.
      await store.blobs.touch(b, 7, 5000);
      expect((await store.blobs.deletion(b)).deleting).toBe(true);
      await store.blobs.endDelete(b, 'other'); // another deletion's token: no effect
      expect((await store.blobs.deletion(b)).deleting).toBe(true);
      await store.blobs.endDelete(b, 'tok1');
      expect(await store.blobs.deletion(b)).toEqual({ token: 'tok1', deleting: false });
      expect(await store.blobs.get(b)).toBeNull();
      expect(await store.blobs.unreferenced(Number.MAX_SAFE_INTEGER)).not.toContain(b);
      const listed: string[] = [];
      for await (const r of store.blobs.list()) listed.push(r.digest);
      expect(listed).not.toContain(b);
      // A publish of the same bytes later revives the row; the token stays.
      await store.blobs.touch(b, 7, 9000);
      expect(await store.blobs.get(b)).toMatchObject({ digest: b, lastTouched: 9000 });
      expect(await store.blobs.deletion(b)).toEqual({ token: 'tok1', deleting: false });
      // An orphan (no row at all) is claimed with a fresh row.
      const o = d('orphan');
      await store.blobs.beginDelete(o, 3, 'tok2');
      await store.blobs.endDelete(o, 'tok2');
      expect(await store.blobs.purgeGone(Date.now() + 1000)).toBe(1);
      expect(await store.blobs.deletion(o)).toEqual({ token: null, deleting: false });
    });

    it('removeIf removes the row only as the caller saw it', async () => {
      await store.files.put({ ...file('r', 'tag'), fetchedAt: 5 });
      await store.files.removeIf('r', 'tag', file('r', 'tag').digest, 4);
      expect(await store.files.get('r', 'tag')).not.toBeNull();
      await store.files.removeIf('r', 'tag', file('r', 'tag').digest, 5);
      expect(await store.files.get('r', 'tag')).toBeNull();
    });

    it('commits a transaction and rolls it back on error', async () => {
      const out = await store.tx(async (m) => {
        await m.files.put(file('r', 'kept'));
        await m.blobs.touch(d('kept'), 1);
        return 42;
      });
      expect(out).toBe(42);
      expect(await store.files.get('r', 'kept')).not.toBeNull();
      await expect(store.tx(async (m) => {
        await m.files.put(file('r', 'dropped'));
        await m.blobs.touch(d('dropped'), 1);
        await m.files.remove('r', 'kept');
        throw new Error('boom');
      })).rejects.toThrow('boom');
      expect(await store.files.get('r', 'dropped')).toBeNull();
      expect(await store.blobs.get(d('dropped'))).toBeNull();
      expect(await store.files.get('r', 'kept')).not.toBeNull();
      // Usable after a rollback; nested tx joins the outer one.
      await store.tx(async (m) => m.tx(async (n) => n.files.put(file('r', 'nested'))));
      expect(await store.files.get('r', 'nested')).not.toBeNull();
    });

    it('runs transactions that lock the same name one at a time', async () => {
      const log: string[] = [];
      const run = (n: number) => store.tx(async (m) => {
        log.push(`start${n}`);
        await sleep(30);
        await m.blobs.touch(d(`t${n}`), n);
        log.push(`end${n}`);
      }, { lock: [d('same')] });
      await Promise.all([run(1), run(2), run(3)]);
      for (let i = 0; i < log.length; i += 2) expect(log[i].replace('start', '')).toBe(log[i + 1].replace('end', ''));
    });

    it('a burst of transactions does not starve plain reads made inside them', async () => {
      // Postgres here has a pool of 4: ten queued transactions must not hold every connection.
      await store.files.put(file('r', 'seen'));
      const seen = await Promise.all(Array.from({ length: 10 }, (_, i) => store.tx(async (m) => {
        const outer = await store.files.get('r', 'seen');
        await m.blobs.touch(d(`burst${i}`), i);
        return outer?.path;
      })));
      expect(seen).toEqual(Array(10).fill('seen'));
    }, 20_000);

    it('transactions locking different names run side by side, also across store instances', async (ctx) => {
      if (!peer) return ctx.skip(); // SQLite serialises every write transaction by design
      const other = await peer();
      let release!: () => void;
      let entered!: () => void;
      const inside = new Promise<void>((r) => (entered = r));
      const held = store.tx(async (m) => {
        entered();
        await new Promise<void>((r) => (release = r));
        await m.blobs.touch(d('held'), 1);
      }, { lock: [d('a')] });
      await inside;
      // Neither of these may queue behind the held transaction (the old global lock would).
      const t0 = Date.now();
      await Promise.race([
        Promise.all([
          store.tx((m) => m.blobs.touch(d('b1'), 1), { lock: [d('b')] }),
          other.tx((m) => m.blobs.touch(d('c1'), 1), { lock: [d('c')] }),
        ]),
        sleep(3000).then(() => { throw new Error('a transaction on another name waited for the held one'); }),
      ]);
      expect(Date.now() - t0).toBeLessThan(3000);
      release();
      await held;
    });

    it('excludes a transaction of another store instance on the same database (another process)', async (ctx) => {
      if (!peer) return ctx.skip();
      const other = await peer();
      const log: string[] = [];
      let entered!: () => void;
      const inside = new Promise<void>((r) => (entered = r));
      const first = store.tx(async (m) => {
        log.push('a-start');
        entered();
        await sleep(300);
        await m.blobs.touch(d('gc-target'), 1, 1);
        log.push('a-end');
      }, { lock: [d('gc-target')] });
      await inside;
      const second = other.tx(async (m) => {
        log.push('b-start');
        // What a gc in another process sees: the publish is complete, never half done.
        expect(await m.blobs.get(d('gc-target'))).not.toBeNull();
        log.push('b-end');
      }, { lock: [d('gc-target')] });
      await Promise.all([first, second]);
      expect(log).toEqual(['a-start', 'a-end', 'b-start', 'b-end']);
      // Plain reads are not blocked by a running tx.
      let release!: () => void;
      const held = store.tx(() => new Promise<void>((r) => (release = r)));
      await sleep(50);
      expect(await other.blobs.get(d('gc-target'))).not.toBeNull();
      release();
      await held;
    });
  });
}
