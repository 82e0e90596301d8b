import Database from 'better-sqlite3';
import { AppError } from '../../lib/errors.js';

/** A user. `passwordHash` is a slow salted hash (auth/passwords.ts), never the password. */
export interface UserRec {
  name: string;
  passwordHash: string;
  admin: boolean;
  createdAt: number;
}

/** An API token: only the sha256 of its secret is stored. */
export interface TokenRec {
  id: string;
  hash: string;
  user: string;
  description?: string;
  /** Repo patterns the token is narrowed to; undefined: every repo its user may use. */
  repos?: string[];
  /** Actions the token is narrowed to; undefined: every action its user may do. */
  actions?: string[];
  expiresAt?: number;
  createdAt: number;
}

/** What `subject` (a user name, or `anonymous`) may do on repos matching `pattern`. */
export interface GrantRec {
  subject: string;
  pattern: string;
  actions: string[];
  createdAt: number;
}

/**
 * Users, tokens and grants (migration 3), on the same database as the MetaStore. Every call reads
 * the database; `epoch` is the counter every change to them bumps (migration 6's triggers), so a
 * cache of these rows (auth/cache.ts) knows itself fresh by reading one integer.
 */
export interface IdentityStore {
  epoch(): Promise<number>;
  users: {
    get(name: string): Promise<UserRec | null>;
    list(): Promise<UserRec[]>;
    count(): Promise<number>;
    /** false when the name is taken (and `replace` is not set). */
    put(u: UserRec, o?: { replace?: boolean }): Promise<boolean>;
    /** Also removes its tokens and grants. */
    remove(name: string): Promise<boolean>;
  };
  tokens: {
    byHash(hash: string): Promise<TokenRec | null>;
    get(id: string): Promise<TokenRec | null>;
    list(user?: string): Promise<TokenRec[]>;
    put(t: TokenRec): Promise<void>;
    remove(id: string): Promise<boolean>;
  };
  grants: {
    list(subject?: string): Promise<GrantRec[]>;
    put(g: GrantRec): Promise<void>;
    remove(subject: string, pattern: string): Promise<boolean>;
  };
  close(): Promise<void>;
}

type Row = Record<string, unknown>;

/** The two calls the store needs; `?` placeholders (Postgres gets `$n`). */
interface Sql {
  all(q: string, params?: unknown[]): Promise<Row[]>;
  run(q: string, params?: unknown[]): Promise<number>;
  close(): Promise<void>;
}

const json = (v: unknown) => (v === undefined ? null : JSON.stringify(v));
const parsed = (v: unknown) => (typeof v === 'string' && v ? (JSON.parse(v) as string[]) : undefined);

const userFrom = (r: Row): UserRec => ({ name: String(r.name), passwordHash: String(r.password_hash), admin: Number(r.admin) === 1, createdAt: Number(r.created_at) });
const tokenFrom = (r: Row): TokenRec => ({
  id: String(r.id), hash: String(r.hash), user: String(r.username),
  ...(r.description ? { description: String(r.description) } : {}),
  ...(r.repos ? { repos: parsed(r.repos) } : {}),
  ...(r.actions ? { actions: parsed(r.actions) } : {}),
  ...(r.expires_at !== null && r.expires_at !== undefined ? { expiresAt: Number(r.expires_at) } : {}),
  createdAt: Number(r.created_at),
});
const grantFrom = (r: Row): GrantRec => ({ subject: String(r.subject), pattern: String(r.pattern), actions: parsed(r.actions) ?? [], createdAt: Number(r.created_at) });

function storeOver(sql: Sql): IdentityStore {
  const one = async (q: string, p: unknown[]) => (await sql.all(q, p))[0];
  return {
    epoch: async () => Number((await one('SELECT n FROM auth_epoch WHERE id = 1', []))!.n),
    users: {
      get: async (name) => {
        const r = await one('SELECT * FROM users WHERE name = ?', [name]);
        return r ? userFrom(r) : null;
      },
      list: async () => (await sql.all('SELECT * FROM users ORDER BY name')).map(userFrom),
      count: async () => Number((await one('SELECT COUNT(*) AS n FROM users', []))!.n),
      put: async (u, o = {}) => {
        const conflict = o.replace ? 'DO UPDATE SET password_hash = excluded.password_hash, admin = excluded.admin' : 'DO NOTHING';
        const n = await sql.run(`INSERT INTO users (name, password_hash, admin, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) ${conflict}`,
          [u.name, u.passwordHash, u.admin ? 1 : 0, u.createdAt]);
        return n > 0;
      },
      remove: async (name) => {
        await sql.run('DELETE FROM tokens WHERE username = ?', [name]);
        await sql.run('DELETE FROM grants WHERE subject = ?', [name]);
        return (await sql.run('DELETE FROM users WHERE name = ?', [name])) > 0;
      },
    },
    tokens: {
      byHash: async (hash) => {
        const r = await one('SELECT * FROM tokens WHERE hash = ?', [hash]);
        return r ? tokenFrom(r) : null;
      },
      get: async (id) => {
        const r = await one('SELECT * FROM tokens WHERE id = ?', [id]);
        return r ? tokenFrom(r) : null;
      },
      list: async (user) => (user === undefined
        ? await sql.all('SELECT * FROM tokens ORDER BY created_at, id')
        : await sql.all('SELECT * FROM tokens WHERE username = ? ORDER BY created_at, id', [user])).map(tokenFrom),
      put: async (t) => {
        await sql.run('INSERT INTO tokens (id, hash, username, description, repos, actions, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
          [t.id, t.hash, t.user, t.description ?? null, json(t.repos), json(t.actions), t.expiresAt ?? null, t.createdAt]);
      },
      remove: async (id) => (await sql.run('DELETE FROM tokens WHERE id = ?', [id])) > 0,
    },
    grants: {
      list: async (subject) => (subject === undefined
        ? await sql.all('SELECT * FROM grants ORDER BY subject, pattern')
        : await sql.all('SELECT * FROM grants WHERE subject = ? ORDER BY pattern', [subject])).map(grantFrom),
      put: async (g) => {
        await sql.run(`INSERT INTO grants (subject, pattern, actions, created_at) VALUES (?, ?, ?, ?)
          ON CONFLICT (subject, pattern) DO UPDATE SET actions = excluded.actions`, [g.subject, g.pattern, JSON.stringify(g.actions), g.createdAt]);
      },
      remove: async (subject, pattern) => (await sql.run('DELETE FROM grants WHERE subject = ? AND pattern = ?', [subject, pattern])) > 0,
    },
    close: () => sql.close(),
  };
}

const isBusy = (err: unknown) => /^SQLITE_BUSY/.test((err as { code?: string })?.code ?? '');

/**
 * Its own SQLite connection to the metadata file (WAL: reads never wait). A write that meets
 * another writer's lock waits between tries without blocking the event loop, up to `busyTimeout`.
 */
function sqliteSql(file: string, busyTimeout: number): Sql {
  const db = new Database(file);
  db.pragma('busy_timeout = 0');
  const stmts = new Map<string, Database.Statement>();
  const prep = (q: string) => {
    let s = stmts.get(q);
    if (!s) stmts.set(q, (s = db.prepare(q)));
    return s;
  };
  return {
    all: async (q, p = []) => prep(q).all(...p) as Row[],
    run: async (q, p = []) => {
      const deadline = Date.now() + busyTimeout;
      for (let pause = 2; ; pause = Math.min(pause * 2, 100)) {
        try {
          return prep(q).run(...p).changes;
        } catch (err) {
          if (!isBusy(err)) throw err;
          if (Date.now() + pause > deadline) throw new AppError('UNAVAILABLE', 'the metadata database is locked by another process; try again');
          await new Promise((r) => setTimeout(r, pause));
        }
      }
    },
    close: async () => void db.close(),
  };
}

async function postgresSql(url: string): Promise<Sql> {
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({ connectionString: url, max: 4, idleTimeoutMillis: 30_000 });
  pool.on('error', () => {});
  const text = (q: string) => {
    let i = 0;
    return q.replace(/\?/g, () => `$${++i}`);
  };
  return {
    all: async (q, p = []) => (await pool.query(text(q), p)).rows as Row[],
    run: async (q, p = []) => (await pool.query(text(q), p)).rowCount ?? 0,
    close: () => pool.end(),
  };
}

/**
 * Opens the identity tables of `databaseUrl` (the MetaStore opened, and so migrated, it first).
 * Kept apart from the MetaStore adapters: auth is the only reader.
 */
export async function openIdentityStore(databaseUrl: string, o: { busyTimeout?: number } = {}): Promise<IdentityStore> {
  if (databaseUrl.startsWith('postgres://') || databaseUrl.startsWith('postgresql://')) return storeOver(await postgresSql(databaseUrl));
  if (databaseUrl.startsWith('sqlite://')) return storeOver(sqliteSql(databaseUrl.slice('sqlite://'.length), o.busyTimeout ?? 5000));
  throw new Error(`database.url: unsupported scheme (use sqlite:// or postgres://)`);
}
