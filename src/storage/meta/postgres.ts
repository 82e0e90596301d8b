import pg from 'pg';
import type { Digest } from '../../lib/digest.js';
import { auditStore } from './audit.js';
import { migrations } from './migrations.js';
import { toPostgres, type SqlRunner } from './sql.js';
import { blobFromRow, fileFromRow, fileToParams, prefixEnd, repoFromRow, repoToParams, sessFromRow, type Row } from './rows.js';
import type { BlobRec, FileRec, MetaStore, RepoDef, UploadSession } from './types.js';

type Querier = { query: (text: string, values?: unknown[]) => Promise<pg.QueryResult<Row>> };

/** Advisory lock keys (any two 32-bit ints unlikely to collide with other users of the database). */
const TX_LOCK = [0x41525449, 1] as const; // 'ARTI', 1: publish/gc exclusivity
const MIGRATE_LOCK = [0x41525449, 2] as const;

// BIGINT (int8) and SUM (numeric) come back as strings; fileFromRow & co convert with Number().

const FILE_COLS = 'repo, path, digest, size, content_type, source, upstream_etag, upstream_last_modified, fetched_at, last_access, meta';
const SQL = {
  ping: 'SELECT 1',
  repoGet: 'SELECT * FROM repos WHERE name = $1',
  repoList: 'SELECT * FROM repos ORDER BY name',
  repoPut: `INSERT INTO repos (name, format, kind, upstream, members, options, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (name) DO UPDATE SET format = excluded.format, kind = excluded.kind, upstream = excluded.upstream,
    members = excluded.members, options = excluded.options`,
  repoDel: 'DELETE FROM repos WHERE name = $1',
  fileGet: 'SELECT * FROM files WHERE repo = $1 AND path = $2',
  filePut: `INSERT INTO files (${FILE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
    ON CONFLICT (repo, path) DO UPDATE SET digest = excluded.digest, size = excluded.size, content_type = excluded.content_type,
    source = excluded.source, upstream_etag = excluded.upstream_etag, upstream_last_modified = excluded.upstream_last_modified,
    fetched_at = excluded.fetched_at, last_access = excluded.last_access, meta = excluded.meta`,
  fileDel: 'DELETE FROM files WHERE repo = $1 AND path = $2',
  fileDelRepo: 'DELETE FROM files WHERE repo = $1',
  // COLLATE "C": byte order, the same order SQLite's BINARY collation gives, so paging by `path > $n` is exact.
  // Prefix as a range on the files_repo_path_c index (migration 2), never a function of path.
  filePage: `SELECT * FROM files WHERE repo = $1 AND path COLLATE "C" >= $2::text AND path COLLATE "C" < $3::text
    ORDER BY path COLLATE "C" LIMIT $4`,
  filePageAfter: `SELECT * FROM files WHERE repo = $1 AND path COLLATE "C" > $2::text AND path COLLATE "C" < $3::text
    ORDER BY path COLLATE "C" LIMIT $4`,
  fileByDigest: 'SELECT * FROM files WHERE digest = $1',
  fileTouch: 'UPDATE files SET last_access = $1 WHERE repo = $2 AND path = $3 AND last_access < $1',
  fileTotal: 'SELECT SUM(size) AS total FROM files WHERE repo = $1',
  fileLru: 'SELECT * FROM files WHERE repo = $1 ORDER BY last_access ASC LIMIT $2',
  blobTouch: `INSERT INTO blobs (digest, size, last_touched) VALUES ($1, $2, $3)
    ON CONFLICT (digest) DO UPDATE SET last_touched = GREATEST(blobs.last_touched, excluded.last_touched)`,
  blobGet: 'SELECT * FROM blobs WHERE digest = $1',
  blobDel: 'DELETE FROM blobs WHERE digest = $1',
  blobPage: 'SELECT * FROM blobs WHERE digest COLLATE "C" > $1::text ORDER BY digest COLLATE "C" LIMIT $2',
  blobUnref: `SELECT digest FROM blobs b WHERE b.last_touched < $1
    AND NOT EXISTS (SELECT 1 FROM files f WHERE f.digest = b.digest)`,
  sessPut: 'INSERT INTO upload_sessions (id, repo, scope, started_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING',
  sessGet: 'SELECT * FROM upload_sessions WHERE id = $1',
  sessDel: 'DELETE FROM upload_sessions WHERE id = $1',
  sessOld: 'SELECT * FROM upload_sessions WHERE started_at < $1',
  sessCount: 'SELECT COUNT(*) AS n FROM upload_sessions WHERE repo = $1',
} as const;

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
    /** Transactions queue in-process first: at most one pooled connection waits on the advisory lock. */
    private readonly txQueue: { tail: Promise<void> },
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
    return new PostgresMetaStore(pool, pool, false, { tail: Promise.resolve() });
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

  tx<T>(fn: (m: MetaStore) => Promise<T>): Promise<T> {
    if (this.inTx) return fn(this);
    // The advisory lock makes transactions exclusive anyway; queueing here first means a burst of
    // them holds one connection, not the whole pool (which a body using the pool would then starve on).
    const result = this.txQueue.tail.then(() => this.runTx(fn));
    this.txQueue.tail = result.then(() => undefined, () => undefined);
    return result;
  }

  private async runTx<T>(fn: (m: MetaStore) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1, $2)', [...TX_LOCK]);
      const result = await fn(new PostgresMetaStore(this.pool, client, true, this.txQueue));
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
    list: (repo: string, prefix = '') => this.iterateFiles(repo, prefix),
    byDigest: async (d: Digest) => (await this.rows(SQL.fileByDigest, [d])).map(fileFromRow),
    touch: async (entries: { repo: string; path: string; at: number }[]) => {
      if (entries.length === 0) return;
      if (this.inTx) {
        for (const e of entries) await this.exec(SQL.fileTouch, [e.at, e.repo, e.path]);
        return;
      }
      // One round trip for the batch: update from an unnested array of rows.
      await this.exec(`UPDATE files f SET last_access = v.at FROM
        (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) AS t(repo, path, at)) v
        WHERE f.repo = v.repo AND f.path = v.path AND f.last_access < v.at`,
      [entries.map((e) => e.repo), entries.map((e) => e.path), entries.map((e) => e.at)]);
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
