import type { Row } from './rows.js';

/**
 * One statement text for both dialects: `?` placeholders, rewritten to `$n` for Postgres. Stores
 * built on it (audit, identities) are written once over this runner instead of once per dialect.
 */
export interface SqlRunner {
  all(sql: string, params?: unknown[]): Promise<Row[]>;
  /** A write; resolves with the number of rows it changed. */
  run(sql: string, params?: unknown[]): Promise<number>;
}

/** `?` → `$1, $2…` (statements here never hold a literal `?`). */
export function toPostgres(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}
