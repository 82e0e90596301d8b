/**
 * Every SQL statement of the metadata store, written once for both dialects.
 * Statements use `?` placeholders and two dialect pieces: `{C}` (byte-order collation on
 * path/digest comparisons: Postgres' "C", nothing in SQLite, whose BINARY collation already is)
 * and `{MAX}` (the two-argument maximum: SQLite's MAX, Postgres' GREATEST). `sqlFor` turns the set
 * into one dialect's text; the adapters only decide how to run it.
 */
import { toPostgres } from './sql.js';

export type Dialect = 'sqlite' | 'postgres';

const FILE_COLS = 'repo, path, digest, size, content_type, source, upstream_etag, upstream_last_modified, fetched_at, last_access, meta';
/** Blob rows gc finished deleting stay as tombstones (see blobs.deletion); readers see only the others. */
const LIVE = "(state IS NULL OR state <> 'gone')";

const STATEMENTS = {
  ping: 'SELECT 1',
  repoGet: 'SELECT * FROM repos WHERE name = ?',
  repoList: 'SELECT * FROM repos ORDER BY name',
  repoPut: `INSERT INTO repos (name, format, kind, upstream, members, options, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET format = excluded.format, kind = excluded.kind, upstream = excluded.upstream,
    members = excluded.members, options = excluded.options`,
  repoDel: 'DELETE FROM repos WHERE name = ?',
  fileGet: 'SELECT * FROM files WHERE repo = ? AND path = ?',
  filePut: `INSERT INTO files (${FILE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (repo, path) DO UPDATE SET digest = excluded.digest, size = excluded.size, content_type = excluded.content_type,
    source = excluded.source, upstream_etag = excluded.upstream_etag, upstream_last_modified = excluded.upstream_last_modified,
    fetched_at = excluded.fetched_at, last_access = excluded.last_access, meta = excluded.meta`,
  fileDel: 'DELETE FROM files WHERE repo = ? AND path = ?',
  /** Compare-and-delete: only the row as the caller saw it (a concurrent rewrite of the path survives). */
  fileDelIf: 'DELETE FROM files WHERE repo = ? AND path = ? AND digest = ? AND fetched_at = ?',
  fileDelRepo: 'DELETE FROM files WHERE repo = ?',
  // A range on the (repo, path) key in byte order, never a function of path: that would scan the whole
  // repo. Postgres: the files_repo_path_c index (migration 2).
  filePage: 'SELECT * FROM files WHERE repo = ? AND path{C} >= ? AND path{C} < ? ORDER BY path{C} LIMIT ?',
  filePageAfter: 'SELECT * FROM files WHERE repo = ? AND path{C} > ? AND path{C} < ? ORDER BY path{C} LIMIT ?',
  fileByDigest: 'SELECT * FROM files WHERE digest = ?',
  fileTouch: 'UPDATE files SET last_access = ? WHERE repo = ? AND path = ? AND last_access < ?',
  fileTotal: 'SELECT SUM(size) AS total FROM files WHERE repo = ?',
  fileLru: 'SELECT * FROM files WHERE repo = ? ORDER BY last_access ASC LIMIT ?',
  // A touch revives a tombstone (the publisher re-checked the bytes first) but never a deletion under way.
  blobTouch: `INSERT INTO blobs (digest, size, last_touched) VALUES (?, ?, ?)
    ON CONFLICT (digest) DO UPDATE SET last_touched = {MAX}(blobs.last_touched, excluded.last_touched),
    state = CASE WHEN blobs.state = 'deleting' THEN blobs.state ELSE NULL END`,
  blobGet: `SELECT * FROM blobs WHERE digest = ? AND ${LIVE}`,
  blobState: 'SELECT state, del_token FROM blobs WHERE digest = ?',
  blobBeginDelete: `INSERT INTO blobs (digest, size, last_touched, state, del_token, deleted_at) VALUES (?, ?, 0, 'deleting', ?, ?)
    ON CONFLICT (digest) DO UPDATE SET state = 'deleting', del_token = excluded.del_token, deleted_at = excluded.deleted_at`,
  blobEndDelete: "UPDATE blobs SET state = 'gone', deleted_at = ? WHERE digest = ? AND del_token = ? AND state = 'deleting'",
  blobPurgeGone: "DELETE FROM blobs WHERE state = 'gone' AND deleted_at < ?",
  blobDel: 'DELETE FROM blobs WHERE digest = ?',
  blobPage: `SELECT * FROM blobs WHERE digest{C} > ? AND ${LIVE} ORDER BY digest{C} LIMIT ?`,
  blobUnref: `SELECT digest FROM blobs b WHERE b.last_touched < ? AND ${LIVE}
    AND NOT EXISTS (SELECT 1 FROM files f WHERE f.digest = b.digest)`,
  sessPut: 'INSERT INTO upload_sessions (id, repo, scope, started_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING',
  sessGet: 'SELECT * FROM upload_sessions WHERE id = ?',
  sessDel: 'DELETE FROM upload_sessions WHERE id = ?',
  sessOld: 'SELECT * FROM upload_sessions WHERE started_at < ?',
  sessCount: 'SELECT COUNT(*) AS n FROM upload_sessions WHERE repo = ?',
} as const;

export type StatementName = keyof typeof STATEMENTS;

/** The statement set in one dialect's text. */
export function sqlFor(dialect: Dialect): Record<StatementName, string> {
  const out = {} as Record<StatementName, string>;
  for (const [name, text] of Object.entries(STATEMENTS) as [StatementName, string][]) {
    let t = text.replaceAll('{C}', dialect === 'postgres' ? ' COLLATE "C"' : '').replaceAll('{MAX}', dialect === 'postgres' ? 'GREATEST' : 'MAX');
    if (dialect === 'postgres') t = toPostgres(t); // `?` never appears inside a literal in this set
    out[name] = t;
  }
  return out;
}
