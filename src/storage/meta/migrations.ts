/**
 * Numbered schema migrations, applied in order at start. Written in the
 * common subset of SQLite and Postgres SQL; an entry may give a dialect
 * override where the two differ.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
  postgres?: string;
}

const AUDIT_TABLE = `
CREATE TABLE audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at BIGINT NOT NULL,
  actor TEXT NOT NULL,
  token_id TEXT,
  address TEXT,
  action TEXT NOT NULL,
  format TEXT,
  repo TEXT,
  subject TEXT,
  status INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  bytes BIGINT
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_repo ON audit (repo, id);
CREATE INDEX audit_actor ON audit (actor, id);
CREATE INDEX audit_action ON audit (action, subject);
`;

export const migrations: Migration[] = [
  {
    version: 1,
    name: 'init',
    sql: `
CREATE TABLE repos (
  name TEXT PRIMARY KEY,
  format TEXT NOT NULL,
  kind TEXT NOT NULL,
  upstream TEXT,
  members TEXT,
  options TEXT NOT NULL DEFAULT '{}',
  created_at BIGINT NOT NULL
);
CREATE TABLE blobs (
  digest TEXT PRIMARY KEY,
  size BIGINT NOT NULL,
  last_touched BIGINT NOT NULL
);
CREATE TABLE files (
  repo TEXT NOT NULL,
  path TEXT NOT NULL,
  digest TEXT NOT NULL,
  size BIGINT NOT NULL,
  content_type TEXT,
  source TEXT NOT NULL,
  upstream_etag TEXT,
  upstream_last_modified TEXT,
  fetched_at BIGINT NOT NULL,
  last_access BIGINT NOT NULL,
  meta TEXT,
  PRIMARY KEY (repo, path)
);
CREATE INDEX files_digest ON files (digest);
CREATE INDEX files_lru ON files (repo, last_access);
CREATE TABLE upload_sessions (
  id TEXT PRIMARY KEY,
  repo TEXT NOT NULL,
  scope TEXT NOT NULL,
  started_at BIGINT NOT NULL
);
`,
  },
  {
    version: 2,
    name: 'files_path_byte_order',
    // Postgres pages file listings in byte order (COLLATE "C"); the primary key follows the
    // database collation, so prefix ranges need their own index. SQLite's key is already in byte order.
    sql: 'SELECT 1;',
    postgres: 'CREATE INDEX files_repo_path_c ON files (repo, path COLLATE "C");',
  },
  {
    version: 3,
    name: 'identities',
    // Users, API tokens (only a hash of each) and grants; src/storage/meta/identities.ts reads them.
    sql: `
CREATE TABLE users (
  name TEXT PRIMARY KEY,
  password_hash TEXT NOT NULL,
  admin INTEGER NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL
);
CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  username TEXT NOT NULL,
  description TEXT,
  repos TEXT,
  actions TEXT,
  expires_at BIGINT,
  created_at BIGINT NOT NULL
);
CREATE INDEX tokens_user ON tokens (username);
CREATE TABLE grants (
  subject TEXT NOT NULL,
  pattern TEXT NOT NULL,
  actions TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (subject, pattern)
);
`,
  },
  {
    version: 4,
    name: 'audit',
    // Migration 3 is the identities' (users, tokens, grants).
    sql: AUDIT_TABLE,
    postgres: AUDIT_TABLE.replace('INTEGER PRIMARY KEY AUTOINCREMENT', 'BIGSERIAL PRIMARY KEY'),
  },
  {
    version: 5,
    name: 'blob_deletions',
    // gc deletes bytes outside the metadata transaction: a row says a deletion is under way
    // (state 'deleting', its token), then that it ended ('gone', kept as a tombstone). See storage/ingest.ts.
    sql: `
ALTER TABLE blobs ADD COLUMN state TEXT;
ALTER TABLE blobs ADD COLUMN del_token TEXT;
ALTER TABLE blobs ADD COLUMN deleted_at BIGINT;
`,
  },
  {
    version: 6,
    name: 'auth_epoch',
    // One counter that every change to users, tokens or grants bumps in its own transaction (triggers,
    // so no write path can forget): instances cache identity rows and read only this to know them fresh.
    sql: `
CREATE TABLE auth_epoch (id INTEGER PRIMARY KEY, n BIGINT NOT NULL);
INSERT INTO auth_epoch (id, n) VALUES (1, 0);
${['users', 'tokens', 'grants'].flatMap((t) => ['INSERT', 'UPDATE', 'DELETE'].map((e) =>
    `CREATE TRIGGER ${t}_${e.toLowerCase()}_epoch AFTER ${e} ON ${t} BEGIN UPDATE auth_epoch SET n = n + 1 WHERE id = 1; END;`)).join('\n')}
`,
    postgres: `
CREATE TABLE auth_epoch (id INTEGER PRIMARY KEY, n BIGINT NOT NULL);
INSERT INTO auth_epoch (id, n) VALUES (1, 0);
CREATE FUNCTION auth_epoch_bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE auth_epoch SET n = n + 1 WHERE id = 1; RETURN NULL; END $$;
${['users', 'tokens', 'grants'].map((t) =>
    `CREATE TRIGGER ${t}_epoch AFTER INSERT OR UPDATE OR DELETE ON ${t} FOR EACH STATEMENT EXECUTE PROCEDURE auth_epoch_bump();`).join('\n')}
`,
  },
];
