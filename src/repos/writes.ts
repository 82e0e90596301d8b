import { AsyncLocalStorage } from 'node:async_hooks';
import type { Digest } from '../lib/digest.js';
import type { FileRec, MetaStore, UploadSession } from '../storage/meta/types.js';
import type { Services } from './services.js';

/**
 * Who acts: the request's `op.identity`, undefined for anonymous requests and for the server's own
 * work (gc from cron). The pipeline runs every handler as its operation's actor (`actingAs`), so
 * each row write and removal here, and the local writes of repos/local.ts, know who made them
 * without a format passing it along. The audit trail records operations (audit/trail.ts); this
 * is the row-level trace of them.
 */
export type Actor = { user: string; tokenId?: string } | undefined;

const acting = new AsyncLocalStorage<Actor>();

/** Runs `fn` (and everything it starts) as `who`. */
export function actingAs<T>(who: Actor, fn: () => T): T {
  return acting.run(who, fn);
}

export function noted(svc: Services, what: string, f: { repo: string; path?: string; digest?: Digest; session?: string }): void {
  const who = acting.getStore();
  svc.log.debug({ ...f, user: who?.user ?? 'anonymous', tokenId: who?.tokenId }, what);
}

/** Writes (or replaces) a file row. */
export async function putFileRow(svc: Services, rec: FileRec): Promise<void> {
  await svc.meta.files.put(rec);
  noted(svc, 'row written', { repo: rec.repo, path: rec.path, digest: rec.digest });
}

/** Writes a file row inside a transaction the caller holds (the one publishing its blob, see storage/ingest.ts). */
export async function putFileRowIn(m: MetaStore, rec: FileRec): Promise<void> {
  await m.files.put(rec);
}

/** Removes a file row (the bytes stay for gc). */
export async function removeFile(svc: Services, repo: string, path: string): Promise<void> {
  await svc.meta.files.remove(repo, path);
  noted(svc, 'row removed', { repo, path });
}

/** Removes several rows of one repo at once: all or none. */
export async function removeFiles(svc: Services, repo: string, paths: string[]): Promise<void> {
  await svc.meta.tx(async (m) => {
    for (const p of paths) await m.files.remove(repo, p);
  });
  for (const path of paths) noted(svc, 'row removed', { repo, path });
}

/** Removes a row only as the caller saw it (same digest and fetch time): a concurrent re-push survives. */
export async function removeFileIfUnchanged(svc: Services, rec: FileRec): Promise<void> {
  await svc.meta.files.removeIf(rec.repo, rec.path, rec.digest, rec.fetchedAt);
  noted(svc, 'row removed if unchanged', { repo: rec.repo, path: rec.path, digest: rec.digest });
}

export async function startUploadSession(svc: Services, s: UploadSession): Promise<void> {
  await svc.meta.sessions.put(s);
  noted(svc, 'upload session started', { repo: s.repo, session: s.id });
}

export async function endUploadSession(svc: Services, id: string): Promise<void> {
  await svc.meta.sessions.remove(id);
  noted(svc, 'upload session ended', { repo: '', session: id });
}
