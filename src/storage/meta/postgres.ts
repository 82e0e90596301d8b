import pg from 'pg';
import type { Digest } from '../../lib/digest.js';
import { auditStore } from './audit.js';
import { migrations } from './migrations.js';
import { toPostgres, type SqlRunner } from './sql.js';
import { sqlFor } from './statements.js';
import { blobFromRow, deletionFromRow, fileFromRow, fileToParams, prefixEnd, repoFromRow, repoToParams, sessFromRow, type Row } from './rows.js';
import type { BlobRec, FileRec, MetaStore, RepoDef, TxOptions, UploadSession } from './types.js';

type Querier = { query: (text: string, values?: unknown[]) => Promise<pg.QueryResult<Row>> };

/** Advisory lock keys (two 32-bit ints; the first unlikely to collide with other users of the database). */
const LOCK_SPACE = 0x41525449; // 'ARTI': per-name locks of `tx(fn, { lock })`, the second int hashtext(name)
const MIGRATE_LOCK = [LOCK_SPACE, 2] as const;

// BIGINT (int8) and SUM (numeric) come back as strings; fileFromRow & co convert with Number().
const SQL = sqlFor('postgres');
/** Postgres only: a batch of access times in one round trip, from unnested arrays. */
const FILE_TOUCH_BATCH = `UPDATE files f SET last_access = v.at FROM
  (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) AS t(repo, path, at)) v
  WHERE f.repo = v.repo AND f.path = v.path AND f.last_access < v.at`;

export interface PostgresOptions {
  poolSize?: number;
}

/**
 * PostgreSQL metadata (pg pool). Plain calls use any pooled connection;
 * `tx` takes one connection, opens a transaction and holds a transaction-level
 * advisory lock for it, so publish and gc exclude each other across every
 * process on the database, as SQLite's BEGIN IMMEDIATE does on one host.
 */
export class PostgresMetaStore implements MetaStore {
  private constructor(
    private readonly pool: pg.Pool,
    private readonly q: Querier,
    private readonly inTx: boolean,
    private readonly txSlots: Slots,
  ) {}

  static async open(url: string, o: PostgresOptions = {}): Promise<PostgresMetaStore> {
    const pool = new pg.Pool({ connectionString: url, max: o.poolSize ?? 10, idleTimeoutMillis: 30_000 });
    // An idle client's error (server restart) must not crash the process; the next query reconnects.
    pool.on('error', () => {});
    try {
      await migrate(pool);
    } catch (err) {
      await pool.end().catch(() => {});
      throw err;
    }
    return new PostgresMetaStore(pool, pool, false, new Slots(Math.max(1, (o.poolSize ?? 10) - 1)));
  }

  private async rows(sql: string, params: unknown[] = []): Promise<Row[]> {
    return (await this.q.query(sql, params)).rows;
  }

  private async one(sql: string, params: unknown[]): Promise<Row | undefined> {
    return (await this.rows(sql, params))[0];
  }

  private async exec(sql: string, params: unknown[]): Promise<void> {
    await this.q.query(sql, params);
  }

  sql: SqlRunner = {
    all: (sql, params = []) => this.rows(toPostgres(sql), params),
    run: async (sql, params = []) => (await this.q.query(toPostgres(sql), params)).rowCount ?? 0,
  };

  audit = auditStore(this.sql);

  tx<T>(fn: (m: MetaStore) => Promise<T>, o: TxOptions = {}): Promise<T> {
    if (this.inTx) return fn(this);
    // At most pool size - 1 transactions hold a connection at once (others queue here), so a body
    // that makes a plain query on the pool always finds a connection.
    return this.txSlots.run(() => this.runTx(fn, o.lock ?? []));
  }

  private async runTx<T>(fn: (m: MetaStore) => Promise<T>, lock: string[]): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      // Per-name locks, in one order everywhere (no deadlock between two multi-name transactions).
      for (const name of [...new Set(lock)].sort()) await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_SPACE, name]);
      const result = await fn(new PostgresMetaStore(this.pool, client, true, this.txSlots));
      await client.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true;
      }
      throw err;
    } finally {
      client.release(broken);
    }
  }

  repos = {
    get: async (name: string) => {
      const r = await this.one(SQL.repoGet, [name]);
      return r ? repoFromRow(r) : null;
    },
    list: async () => (await this.rows(SQL.repoList)).map(repoFromRow),
    put: (def: RepoDef) => this.exec(SQL.repoPut, repoToParams(def)),
    remove: (name: string) => this.exec(SQL.repoDel, [name]),
  };

  files = {
    get: async (repo: string, path: string) => {
      const r = await this.one(SQL.fileGet, [repo, path]);
      return r ? fileFromRow(r) : null;
    },
    put: (f: FileRec) => this.exec(SQL.filePut, fileToParams(f)),
    remove: (repo: string, path: string) => this.exec(SQL.fileDel, [repo, path]),
    removeIf: (repo: string, path: string, d: Digest, fetchedAt: number) => this.exec(SQL.fileDelIf, [repo, path, d, fetchedAt]),
    list: (repo: string, prefix = '') => this.iterateFiles(repo, prefix),
    byDigest: async (d: Digest) => (await this.rows(SQL.fileByDigest, [d])).map(fileFromRow),
    touch: async (entries: { repo: string; path: string; at: number }[]) => {
      if (entries.length === 0) return;
      if (this.inTx) {
        for (const e of entries) await this.exec(SQL.fileTouch, [e.at, e.repo, e.path, e.at]);
        return;
      }
      // One round trip for the batch: update from an unnested array of rows.
      await this.exec(FILE_TOUCH_BATCH, [entries.map((e) => e.repo), entries.map((e) => e.path), entries.map((e) => e.at)]);
    },
    totalSize: async (repo: string) => Number((await this.one(SQL.fileTotal, [repo]))?.total ?? 0),
    lru: async (repo: string, limit: number) => (await this.rows(SQL.fileLru, [repo, limit])).map(fileFromRow),
    removeRepo: (repo: string) => this.exec(SQL.fileDelRepo, [repo]),
  };

  blobs = {
    touch: (d: Digest, size: number, at = Date.now()) => this.exec(SQL.blobTouch, [d, size, at]),
    get: async (d: Digest) => {
      const r = await this.one(SQL.blobGet, [d]);
      return r ? blobFromRow(r) : null;
    },
    remove: (d: Digest) => this.exec(SQL.blobDel, [d]),
    list: () => this.iterateBlobs(),
    unreferenced: async (before: number) => (await this.rows(SQL.blobUnref, [before])).map((r) => r.digest as Digest),
    deletion: async (d: Digest) => deletionFromRow(await this.one(SQL.blobState, [d])),
    beginDelete: (d: Digest, size: number, token: string) => this.exec(SQL.blobBeginDelete, [d, size, token, Date.now()]),
    endDelete: (d: Digest, token: string) => this.exec(SQL.blobEndDelete, [Date.now(), d, token]),
    purgeGone: async (before: number) => (await this.q.query(SQL.blobPurgeGone, [before])).rowCount ?? 0,
  };

  sessions = {
    put: (u: UploadSession) => this.exec(SQL.sessPut, [u.id, u.repo, u.scope, u.startedAt]),
    get: async (id: string) => {
      const r = await this.one(SQL.sessGet, [id]);
      return r ? sessFromRow(r) : null;
    },
    remove: (id: string) => this.exec(SQL.sessDel, [id]),
    olderThan: async (t: number) => (await this.rows(SQL.sessOld, [t])).map(sessFromRow),
    count: async (repo: string) => Number((await this.one(SQL.sessCount, [repo]))!.n),
  };

  async ping(): Promise<void> {
    await this.q.query(SQL.ping);
  }

  async close(): Promise<void> {
    if (!this.inTx) await this.pool.end();
  }

  private async *iterateFiles(repo: string, prefix: string): AsyncIterable<FileRec> {
    const end = prefixEnd(prefix);
    let after = '';
    for (;;) {
      const rows = await this.rows(after ? SQL.filePageAfter : SQL.filePage, [repo, after || prefix, end, 500]);
      for (const r of rows) yield fileFromRow(r);
      if (rows.length < 500) return;
      after = rows[rows.length - 1].path as string;
    }
  }

  private async *iterateBlobs(): AsyncIterable<BlobRec> {
    let after = '';
    for (;;) {
      const rows = await this.rows(SQL.blobPage, [after, 500]);
      for (const r of rows) yield blobFromRow(r);
      if (rows.length < 500) return;
      after = rows[rows.length - 1].digest as string;
    }
  }
}

/** Applies pending migrations once, even when several instances start together. */
async function migrate(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1, $2)', [...MIGRATE_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
    const done = new Set((await client.query('SELECT version FROM schema_migrations')).rows.map((r: { version: number }) => r.version));
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await client.query(m.postgres ?? m.sql);
      await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, Date.now()]);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/** A counting semaphore: at most `n` holders at once, the rest wait in order. */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  constructor(n: number) {
    this.free = n;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.waiting.push(r));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}
