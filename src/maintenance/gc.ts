import { randomUUID } from 'node:crypto';
import type { Digest } from '../lib/digest.js';
import { FORMAT_HANDLERS } from '../formats/index.js';
import type { FormatHandler, GcContext } from '../formats/types.js';
import type { Services } from '../repos/services.js';

const TEMP_MIN_IDLE = 10 * 60_000;
const TOMBSTONE_AGE = 24 * 3_600_000;

export interface GcAction {
  action: 'delete-blob' | 'delete-orphan' | 'evict' | 'delete-temp' | string;
  repo?: string;
  path?: string;
  digest?: string;
  bytes?: number;
}

export interface GcReport {
  dryRun: boolean;
  actions: GcAction[];
  /** Count and bytes per action. */
  summary: Record<string, { count: number; bytes: number }>;
}

/** A format's gc hook, given the format's repos of the kinds it names. */
export async function formatGc(ctx: GcContext, { name, gc }: FormatHandler): Promise<void> {
  if (gc) await gc.run(ctx, (await ctx.svc.repos.list()).filter((r) => r.format === name && gc.kinds.includes(r.kind)));
}

/**
 * Garbage collection, safe while `serve` runs in another process:
 * 1. each format's own gc hook (docker: untagged manifests, expired upload sessions);
 * 2. LRU eviction of remote repos above `max_cache_size` (rows only; local content is never evicted);
 * 3. sweep: blobs no row references and not touched within `gc.grace`, each re-checked under its
 *    digest's lock and marked, deleted outside the transaction, then marked gone (publishers of the
 *    same digest check those marks under the same lock, so a blob being published is never reaped);
 * 4. CAS objects with no blob row (crash leftovers) and abandoned temp files older than the grace.
 * Evicted blobs are usually older than the grace, so the same run reclaims them.
 */
export async function runGc(svc: Services, o: { dryRun?: boolean; now?: number } = {}): Promise<GcReport> {
  const dryRun = !!o.dryRun;
  const now = o.now ?? Date.now();
  const actions: GcAction[] = [];
  const ctx: GcContext = { svc, dryRun, now, report: (a) => actions.push(a) };
  const cutoff = now - svc.config.gc.grace;

  for (const handler of Object.values(FORMAT_HANDLERS)) await formatGc(ctx, handler);
  await evictRemoteCaches(ctx);

  // In a dry run nothing was removed above, so rows that would go still hold their blobs: the
  // sweep then reports only what is already unreferenced.
  for (const d of await svc.meta.blobs.unreferenced(cutoff)) {
    const size = await sweepBlob(svc, d, cutoff, dryRun);
    if (size !== null) ctx.report({ action: 'delete-blob', digest: d, bytes: size });
  }
  // Staging content is abandoned only when nothing wrote to it for the grace and at least TEMP_MIN_IDLE:
  // uploads and fills write continuously, and the HTTP server ends requests idle for 5 minutes.
  // Orphans get the same floor, since an S3 upload of known digest lands in place a moment
  // before the transaction that records it.
  const stagingCutoff = Math.min(cutoff, now - TEMP_MIN_IDLE);
  await sweepOrphans(ctx, stagingCutoff);
  // Tombstones of finished deletions: a publisher compares tokens within one publish, never a day.
  if (!dryRun) await svc.meta.blobs.purgeGone(now - TOMBSTONE_AGE);
  for await (const left of svc.blob.sweepStaging(stagingCutoff, dryRun)) {
    ctx.report({ action: 'delete-temp', path: left.name, bytes: left.bytes });
  }

  const retention = svc.config.audit.retention;
  if (retention > 0 && !dryRun) {
    const pruned = await svc.meta.audit.prune(now - retention);
    if (pruned > 0) ctx.report({ action: 'prune-audit', bytes: 0, path: `${pruned} entries` });
  }

  const summary: GcReport['summary'] = {};
  for (const a of actions) {
    const s = (summary[a.action] ??= { count: 0, bytes: 0 });
    s.count++;
    s.bytes += a.bytes ?? 0;
  }
  if (!dryRun) {
    // The run itself is in the trail: /metrics reads gc runs and bytes freed from it, whichever process ran gc.
    const freed = actions.filter((a) => a.action !== 'evict').reduce((n, a) => n + (a.bytes ?? 0), 0);
    await svc.meta.audit.append([{ at: Date.now(), actor: 'system', action: 'admin', subject: 'gc', status: 200, outcome: 'ok', bytes: freed }]);
  }
  return { dryRun, actions, summary };
}

/**
 * Deletes one blob if, under its digest's lock, it is still unreferenced and untouched since
 * `cutoff` (or a deletion of it was left unfinished). The store's delete runs outside the
 * transaction, bracketed by a "deleting" mark and a "gone" one, which publishers of the same
 * digest check (storage/ingest.ts). Returns its size when deleted (or would be, dry run), else null.
 */
export async function sweepBlob(svc: Services, d: Digest, cutoff: number, dryRun = false): Promise<number | null> {
  const token = randomUUID();
  const size = await svc.meta.tx(async (m) => {
    const rec = await m.blobs.get(d);
    if (!rec || (!rec.deleting && rec.lastTouched >= cutoff)) return null;
    if ((await m.files.byDigest(d)).length > 0) return null;
    if (!dryRun) await m.blobs.beginDelete(d, rec.size, token);
    return rec.size;
  }, { lock: [d] });
  if (size !== null && !dryRun) await deleteMarked(svc, d, token);
  return size;
}

/** The store's delete of a blob marked "deleting" under `token`, then the "gone" mark (also after a failed delete: publishers re-check the bytes). */
async function deleteMarked(svc: Services, d: Digest, token: string): Promise<void> {
  try {
    await svc.blob.delete(d);
  } finally {
    await svc.meta.tx((m) => m.blobs.endDelete(d, token), { lock: [d] });
  }
}

async function evictRemoteCaches(ctx: GcContext): Promise<void> {
  const { svc } = ctx;
  for (const repo of await svc.repos.list()) {
    const cap = repo.options.max_cache_size as number | undefined;
    if (repo.kind !== 'remote' || cap === undefined) continue;
    let total = await svc.meta.files.totalSize(repo.name);
    let offset = 0;
    while (total > cap) {
      // In a dry run rows stay, so page past the ones already counted.
      const batch = (await svc.meta.files.lru(repo.name, offset + 100)).slice(offset);
      if (batch.length === 0) break;
      for (const f of batch) {
        if (total <= cap) break;
        if (!ctx.dryRun) await svc.meta.files.remove(f.repo, f.path);
        total -= f.size;
        ctx.report({ action: 'evict', repo: f.repo, path: f.path, digest: f.digest, bytes: f.size });
      }
      if (ctx.dryRun) offset += batch.length;
    }
  }
}

/** CAS objects without a blob row (a crash between rename and row, or a lost row), past the grace. */
async function sweepOrphans(ctx: GcContext, cutoff: number): Promise<void> {
  const { svc } = ctx;
  for await (const b of svc.blob.list()) {
    if (b.createdAt.getTime() >= cutoff) continue;
    if (await svc.meta.blobs.get(b.digest)) continue;
    const token = randomUUID();
    const deleted = await svc.meta.tx(async (m) => {
      if (await m.blobs.get(b.digest)) return false;
      if ((await m.files.byDigest(b.digest)).length > 0) {
        // Referenced but unrecorded: record it rather than delete it.
        if (!ctx.dryRun) await m.blobs.touch(b.digest, b.size);
        return false;
      }
      if (!ctx.dryRun) await m.blobs.beginDelete(b.digest, b.size, token);
      return true;
    }, { lock: [b.digest] });
    if (deleted && !ctx.dryRun) await deleteMarked(svc, b.digest, token);
    if (deleted) ctx.report({ action: 'delete-orphan', digest: b.digest, bytes: b.size });
  }
}
