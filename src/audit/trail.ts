import type { FastifyRequest } from 'fastify';
import type { AuditEntry } from '../storage/meta/audit.js';
import type { MetaStore } from '../storage/meta/types.js';
import type { Operation } from '../server/pipeline.js';

const FLUSH_EVERY_MS = 500;
const FLUSH_AT = 200;
/** Entries held while the database refuses writes; beyond this the oldest are dropped (and logged). */
const MAX_PENDING = 10_000;

export function outcomeOf(status: number): AuditEntry['outcome'] {
  if (status === 401 || status === 403) return 'denied';
  return status < 400 ? 'ok' : 'failed';
}

/**
 * The audit trail: an after-hook of the pipeline that records every write, delete and admin
 * operation with who did it, from where, and how it ended. Rows are batched (one insert per
 * burst) off the request path; `flush` on close writes what is left.
 */
export class AuditTrail {
  private pending: AuditEntry[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly meta: MetaStore, private readonly log: { error(o: object, msg: string): void }) {}

  /** The pipeline after-hook. Reads are not audited (metrics count them). */
  readonly hook = (op: Operation, req: FastifyRequest, outcome: { status: number }) => {
    if (op.action === 'read') return;
    const length = req.headers['content-length'];
    this.record({
      at: Date.now(),
      actor: op.identity?.user ?? 'anonymous',
      tokenId: op.identity?.tokenId,
      address: req.ip,
      action: op.action,
      format: op.format,
      repo: op.repo?.name,
      subject: op.subject,
      status: outcome.status,
      outcome: outcomeOf(outcome.status),
      bytes: length !== undefined && /^\d+$/.test(String(length)) ? Number(length) : undefined,
    });
  };

  record(e: AuditEntry): void {
    this.pending.push(e);
    if (this.pending.length > MAX_PENDING) {
      const dropped = this.pending.splice(0, this.pending.length - MAX_PENDING);
      this.log.error({ dropped: dropped.length }, 'audit entries dropped: the metadata store refuses writes');
    }
    if (this.pending.length >= FLUSH_AT) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), FLUSH_EVERY_MS).unref();
  }

  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing = this.flushing.then(async () => {
      const batch = this.pending.splice(0, this.pending.length);
      if (batch.length === 0) return;
      let written = 0;
      try {
        for (; written < batch.length; written += 100) await this.meta.audit.append(batch.slice(written, written + 100));
      } catch (err) {
        // Kept for the next flush: a locked or restarting database must not lose the trail.
        this.pending.unshift(...batch.slice(written));
        this.log.error({ err }, 'audit write failed; will retry');
        this.timer ??= setTimeout(() => void this.flush(), FLUSH_EVERY_MS * 4).unref();
      }
    });
    return this.flushing;
  }
}
