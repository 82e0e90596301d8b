import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Digest } from '../../lib/digest.js';
import { AppError } from '../../lib/errors.js';
import { auditStore } from './audit.js';
import { migrations } from './migrations.js';
import type { SqlRunner } from './sql.js';
import { keysetPages } from './paging.js';
import { sqlFor, type StatementName } from './statements.js';
import { blobFromRow, deletionFromRow, fileFromRow, fileToParams, prefixEnd, repoFromRow, repoToParams, sessFromRow, type Row } from './rows.js';
import type { BlobRec, FileRec, MetaStore, RepoDef, TxOptions, UploadSession } from './types.js';


/** A promise-chain mutex: one holder at a time within this process. */
class Mutex {
  private tail: Promise<void> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(() => undefined, () => undefined);
    return result;
  }
}

const isBusy = (err: unknown) => /^SQLITE_BUSY/.test((err as { code?: string })?.code ?? '');

/**
 * Runs `take` (a statement or BEGIN that needs the write lock) until another process lets go of the
 * lock: SQLite's own busy wait would block the event loop, so it is off and this waits between tries,
 * up to `deadline`, then gives up with 503 UNAVAILABLE.
 */
async function whenUnlocked<T>(take: () => T, deadline: number): Promise<T> {
  for (let pause = 2; ; pause = Math.min(pause * 2, 100)) {
    try {
      return take();
    } catch (err) {
      if (!isBusy(err)) throw err;
      if (Date.now() + pause > deadline) throw new AppError('UNAVAILABLE', 'the metadata database is locked by another process; try again');
      await new Promise((r) => setTimeout(r, pause));
    }
  }
}

/**
 * SQLite (WAL) metadata. One connection per process; writes are serialised by a
 * mutex, and `tx` holds `BEGIN IMMEDIATE`, which also excludes other processes
 * (a `gc` run from cron) for its duration. A write waits for another process's
 * lock at most `busyTimeout` ms (counted from the call), without blocking reads.
 */
export class SqliteMetaStore implements MetaStore {
  private readonly db: Database.Database;
  private readonly mutex: Mutex;
  private readonly inTx: boolean;
  private readonly s: Record<StatementName, Database.Statement>;

  static open(file: string, o: { busyTimeout?: number } = {}): SqliteMetaStore {
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
    const db = new Database(file);
    // Opening (and migrating) may wait for a lock the plain way: nothing is served yet.
    db.pragma('busy_timeout = 15000');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    migrate(db);
    db.pragma('busy_timeout = 0');
    return new SqliteMetaStore(db, new Mutex(), false, prepare(db), o.busyTimeout ?? 5000);
  }

  private constructor(db: Database.Database, mutex: Mutex, inTx: boolean, stmts: Record<StatementName, Database.Statement>, private readonly busyTimeout: number) {
    this.db = db;
    this.mutex = mutex;
    this.inTx = inTx;
    this.s = stmts;
  }

  private write<T>(fn: () => T): Promise<T> {
    if (this.inTx) return Promise.resolve(fn());
    const deadline = Date.now() + this.busyTimeout;
    return this.mutex.run(() => whenUnlocked(fn, deadline));
  }

  /** Every write transaction is exclusive here (BEGIN IMMEDIATE), so `o.lock` needs nothing more. */
  tx<T>(fn: (m: MetaStore) => Promise<T>, _o?: TxOptions): Promise<T> {
    if (this.inTx) return fn(this);
    const deadline = Date.now() + this.busyTimeout;
    return this.mutex.run(async () => {
      await whenUnlocked(() => this.db.exec('BEGIN IMMEDIATE'), deadline);
      try {
        const result = await fn(new SqliteMetaStore(this.db, this.mutex, true, this.s, this.busyTimeout));
        this.db.exec('COMMIT');
        return result;
      } catch (err) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw err;
      }
    });
  }

  repos = {
    get: async (name: string) => {
      const r = this.s.repoGet.get(name) as Row | undefined;
      return r ? repoFromRow(r) : null;
    },
    list: async () => (this.s.repoList.all() as Row[]).map(repoFromRow),
    put: (def: RepoDef) => this.write(() => void this.s.repoPut.run(...repoToParams(def))),
    remove: (name: string) => this.write(() => void this.s.repoDel.run(name)),
  };

  files = {
    get: async (repo: string, path: string) => {
      const r = this.s.fileGet.get(repo, path) as Row | undefined;
      return r ? fileFromRow(r) : null;
    },
    put: (f: FileRec) => this.write(() => void this.s.filePut.run(...fileToParams(f))),
    remove: (repo: string, path: string) => this.write(() => void this.s.fileDel.run(repo, path)),
    removeIf: (repo: string, path: string, d: Digest, fetchedAt: number) => this.write(() => void this.s.fileDelIf.run(repo, path, d, fetchedAt)),
    list: (repo: string, prefix = '') => this.iterateFiles(repo, prefix),
    byDigest: async (d: Digest) => (this.s.fileByDigest.all(d) as Row[]).map(fileFromRow),
    touch: (entries: { repo: string; path: string; at: number }[]) =>
      this.write(() => {
        const run = () => { for (const e of entries) this.s.fileTouch.run(e.at, e.repo, e.path, e.at); };
        if (this.db.inTransaction) run(); else this.db.transaction(run).immediate();
      }),
    totalSize: async (repo: string) => Number((this.s.fileTotal.get(repo) as Row).total ?? 0),
    lru: async (repo: string, limit: number) => (this.s.fileLru.all(repo, limit) as Row[]).map(fileFromRow),
    removeRepo: (repo: string) => this.write(() => void this.s.fileDelRepo.run(repo)),
  };

  blobs = {
    touch: (d: Digest, size: number, at = Date.now()) => this.write(() => void this.s.blobTouch.run(d, size, at)),
    get: async (d: Digest) => {
      const r = this.s.blobGet.get(d) as Row | undefined;
      return r ? blobFromRow(r) : null;
    },
    remove: (d: Digest) => this.write(() => void this.s.blobDel.run(d)),
    list: () => this.iterateBlobs(),
    unreferenced: async (before: number) => (this.s.blobUnref.all(before) as Row[]).map((r) => r.digest as Digest),
    deletion: async (d: Digest) => deletionFromRow(this.s.blobState.get(d) as Row | undefined),
    beginDelete: (d: Digest, size: number, token: string) => this.write(() => void this.s.blobBeginDelete.run(d, size, token, Date.now())),
    endDelete: (d: Digest, token: string) => this.write(() => void this.s.blobEndDelete.run(Date.now(), d, token)),
    purgeGone: (before: number) => this.write(() => this.s.blobPurgeGone.run(before).changes),
  };

  sessions = {
    put: (u: UploadSession) => this.write(() => void this.s.sessPut.run(u.id, u.repo, u.scope, u.startedAt)),
    get: async (id: string) => {
      const r = this.s.sessGet.get(id) as Row | undefined;
      return r ? sessFromRow(r) : null;
    },
    remove: (id: string) => this.write(() => void this.s.sessDel.run(id)),
    olderThan: async (t: number) =>
      (this.s.sessOld.all(t) as Row[]).map(sessFromRow),
    count: async (repo: string) => Number((this.s.sessCount.get(repo) as { n: number }).n),
  };

  private readonly statements = new Map<string, Database.Statement>();
  private prepared(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) this.statements.set(sql, (st = this.db.prepare(sql)));
    return st;
  }

  sql: SqlRunner = {
    all: async (sql, params = []) => this.prepared(sql).all(...params) as Row[],
    run: (sql, params = []) => this.write(() => this.prepared(sql).run(...params).changes),
  };

  audit = auditStore(this.sql);

  async ping(): Promise<void> {
    this.s.ping.get();
  }

  async close(): Promise<void> {
    if (!this.inTx) await this.mutex.run(async () => this.db.close());
  }

  private iterateFiles(repo: string, prefix: string): AsyncIterable<FileRec> {
    const end = prefixEnd(prefix);
    return keysetPages((after, n) => ((after ? this.s.filePageAfter.all(repo, after, end, n) : this.s.filePage.all(repo, prefix, end, n)) as Row[]).map(fileFromRow), (f) => f.path);
  }

  private iterateBlobs(): AsyncIterable<BlobRec> {
    return keysetPages((after, n) => (this.s.blobPage.all(after, n) as Row[]).map(blobFromRow), (b) => b.digest);
  }
}

function migrate(db: Database.Database): void {
  // Nothing pending: take no write lock (a `gc` started while serve holds a tx must not block here).
  const hasTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get();
  if (hasTable) {
    const applied = new Set((db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version));
    if (migrations.every((m) => applied.has(m.version))) return;
  }
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
  db.transaction(() => {
    const done = new Set((db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version));
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
    }
  }).immediate();
}

/** The shared statement set (statements.ts), prepared once per connection. */
function prepare(db: Database.Database): Record<StatementName, Database.Statement> {
  const out = {} as Record<StatementName, Database.Statement>;
  for (const [name, text] of Object.entries(sqlFor('sqlite')) as [StatementName, string][]) out[name] = db.prepare(text);
  return out;
}
