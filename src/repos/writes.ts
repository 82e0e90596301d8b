import type { Digest } from '../lib/digest.js';
import type { FileRec, MetaStore, UploadSession } from '../storage/meta/types.js';
import type { Services } from './services.js';

/**
 * Who acts: the request's `op.identity` (server/pipeline.ts), undefined for anonymous requests and
 * for the server's own work (cache fills, gc). Every row write and removal a format makes goes
 * through the functions here, so the core sees each one with its actor (logs now; audit hooks next).
 */
export type Actor = { user: string; tokenId?: string } | undefined;

function noted(svc: Services, who: Actor, what: string, f: { repo: string; path?: string; digest?: Digest; session?: string }): void {
  svc.log.debug({ ...f, user: who?.user ?? 'anonymous', token: who?.tokenId }, what);
}

/** Writes (or replaces) a file row. */
export async function putFileRow(svc: Services, who: Actor, rec: FileRec): Promise<void> {
  await svc.meta.files.put(rec);
  noted(svc, who, 'row written', { repo: rec.repo, path: rec.path, digest: rec.digest });
}

/** Writes a file row inside a transaction the caller holds (the one publishing its blob, see storage/ingest.ts). */
export async function putFileRowIn(m: MetaStore, _who: Actor, rec: FileRec): Promise<void> {
  await m.files.put(rec);
}

/** Removes a file row (the bytes stay for gc). */
export async function removeFile(svc: Services, who: Actor, repo: string, path: string): Promise<void> {
  await svc.meta.files.remove(repo, path);
  noted(svc, who, 'row removed', { repo, path });
}

/** Removes several rows of one repo at once: all or none. */
export async function removeFiles(svc: Services, who: Actor, repo: string, paths: string[]): Promise<void> {
  await svc.meta.tx(async (m) => {
    for (const p of paths) await m.files.remove(repo, p);
  });
  for (const path of paths) noted(svc, who, 'row removed', { repo, path });
}

/** Removes a row only as the caller saw it (same digest and fetch time): a concurrent re-push survives. */
export async function removeFileIfUnchanged(svc: Services, who: Actor, rec: FileRec): Promise<void> {
  await svc.meta.files.removeIf(rec.repo, rec.path, rec.digest, rec.fetchedAt);
  noted(svc, who, 'row removed if unchanged', { repo: rec.repo, path: rec.path, digest: rec.digest });
}

export async function startUploadSession(svc: Services, who: Actor, s: UploadSession): Promise<void> {
  await svc.meta.sessions.put(s);
  noted(svc, who, 'upload session started', { repo: s.repo, session: s.id });
}

export async function endUploadSession(svc: Services, who: Actor, id: string): Promise<void> {
  await svc.meta.sessions.remove(id);
  noted(svc, who, 'upload session ended', { repo: '', session: id });
}
