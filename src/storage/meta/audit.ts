import type { SqlRunner } from './sql.js';

/** One audited operation: a write, delete or admin action, allowed or refused. */
export interface AuditEntry {
  id?: number;
  at: number;
  /** User name, or `anonymous`. */
  actor: string;
  tokenId?: string;
  address?: string;
  action: string;
  format?: string;
  repo?: string;
  /** Path, digest, package or setting acted on. */
  subject?: string;
  status: number;
  /** `ok` (2xx/3xx), `denied` (401/403), `failed` (anything else). */
  outcome: 'ok' | 'denied' | 'failed';
  bytes?: number;
}

export interface AuditQuery {
  repo?: string;
  actor?: string;
  action?: string;
  since?: number;
  /** Keyset paging: entries with a smaller id (newest first). */
  beforeId?: number;
  limit: number;
}

export interface AuditStore {
  append(entries: AuditEntry[]): Promise<void>;
  /** Newest first. */
  list(q: AuditQuery): Promise<AuditEntry[]>;
  /** Drops entries older than `before`; returns how many. */
  prune(before: number): Promise<number>;
  /** Count and summed bytes of entries with this action and subject (gc runs and bytes freed). */
  totals(action: string, subject: string): Promise<{ count: number; bytes: number }>;
}

const COLS = 'at, actor, token_id, address, action, format, repo, subject, status, outcome, bytes';

export function auditStore(db: SqlRunner): AuditStore {
  return {
    async append(entries) {
      if (entries.length === 0) return;
      const values = entries.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ');
      await db.run(`INSERT INTO audit (${COLS}) VALUES ${values}`, entries.flatMap((e) => [
        e.at, e.actor, e.tokenId ?? null, e.address ?? null, e.action, e.format ?? null, e.repo ?? null, e.subject ?? null, e.status, e.outcome, e.bytes ?? null,
      ]));
    },
    async list(q) {
      const where: string[] = [];
      const params: unknown[] = [];
      const add = (sql: string, v: unknown) => { where.push(sql); params.push(v); };
      if (q.repo !== undefined) add('repo = ?', q.repo);
      if (q.actor !== undefined) add('actor = ?', q.actor);
      if (q.action !== undefined) add('action = ?', q.action);
      if (q.since !== undefined) add('at >= ?', q.since);
      if (q.beforeId !== undefined) add('id < ?', q.beforeId);
      params.push(q.limit);
      const rows = await db.all(`SELECT id, ${COLS} FROM audit${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`, params);
      return rows.map((r) => ({
        id: Number(r.id), at: Number(r.at), actor: r.actor as string, action: r.action as string, status: Number(r.status),
        outcome: r.outcome as AuditEntry['outcome'],
        ...(r.token_id != null ? { tokenId: r.token_id as string } : {}),
        ...(r.address != null ? { address: r.address as string } : {}),
        ...(r.format != null ? { format: r.format as string } : {}),
        ...(r.repo != null ? { repo: r.repo as string } : {}),
        ...(r.subject != null ? { subject: r.subject as string } : {}),
        ...(r.bytes != null ? { bytes: Number(r.bytes) } : {}),
      }));
    },
    prune: (before) => db.run('DELETE FROM audit WHERE at < ?', [before]),
    async totals(action, subject) {
      const [r] = await db.all('SELECT COUNT(*) AS n, SUM(bytes) AS b FROM audit WHERE action = ? AND subject = ?', [action, subject]);
      return { count: Number(r?.n ?? 0), bytes: Number(r?.b ?? 0) };
    },
  };
}
