import type { FastifyInstance } from 'fastify';
import { parseDuration } from '../../lib/units.js';
import { AppError } from '../../lib/errors.js';
import type { Services } from '../../repos/services.js';
import type { AuditEntry, AuditQuery } from '../../storage/meta/audit.js';
import type { MetaStore } from '../../storage/meta/types.js';
import { runWithHooks, type Operation } from '../pipeline.js';

const MAX_PAGE = 1000;

/** Filters as the API and the CLI take them: `repo`, `user`, `action`, `since` (a duration back from now, or an ISO time), `limit`, `before`. */
export function auditQuery(q: Record<string, string | undefined>, now = Date.now()): AuditQuery {
  const num = (v: string | undefined, name: string) => {
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw new AppError('BAD_REQUEST', `${name} must be a whole number`);
    return Number(v);
  };
  let since: number | undefined;
  if (q.since !== undefined) {
    const t = /^\d+(?:\.\d+)?(?:ms|s|m|h|d)$/.test(q.since) ? now - parseDuration(q.since) : Date.parse(q.since);
    if (Number.isNaN(t)) throw new AppError('BAD_REQUEST', 'since must be a duration ("24h") or a time ("2026-12-01T00:00:00Z")');
    since = t;
  }
  return {
    repo: q.repo, actor: q.user, action: q.action, since,
    beforeId: num(q.before, 'before'),
    limit: Math.min(num(q.limit, 'limit') ?? 100, MAX_PAGE),
  };
}

export async function auditPage(meta: MetaStore, q: AuditQuery): Promise<{ entries: AuditEntry[]; next?: string }> {
  const entries = await meta.audit.list(q);
  const last = entries.at(-1);
  return { entries, ...(entries.length === q.limit && last?.id !== undefined ? { next: String(last.id) } : {}) };
}

/** `GET /api/v1/audit`: newest first, paged by `before=<id>` (the `next` of the previous page). An admin operation. */
export async function auditApi(app: FastifyInstance, svc: Services): Promise<void> {
  app.get('/api/v1/audit', async (req, reply) => {
    const op: Operation = { format: 'api', action: 'admin', touches: [], subject: 'audit' };
    const call = { req, reply, svc };
    return runWithHooks(op, call, async () => {
      await svc.audit.flush();
      return auditPage(svc.meta, auditQuery(req.query as Record<string, string | undefined>));
    });
  });
}
