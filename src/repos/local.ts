import type { Readable } from 'node:stream';
import { AppError } from '../lib/errors.js';
import type { Digest } from '../lib/digest.js';
import type { ExtraHashes } from '../lib/spool.js';
import { ingestStream, linkBlob } from '../storage/ingest.js';
import type { FileRec, MetaStore, RepoDef } from '../storage/meta/types.js';
import type { Services } from './services.js';
import { noted } from './writes.js';
import type { FileRef, Served } from './types.js';

export async function localFile(svc: Services, repo: RepoDef, ref: FileRef): Promise<Served> {
  const rec = await svc.meta.files.get(repo.name, ref.path);
  if (!rec) throw new AppError('NOT_FOUND', `${ref.path} not found in ${repo.name}`);
  return { rec, source: 'local', servedBy: repo.name, size: rec.size };
}

export interface PutOptions {
  expect?: { digest?: Digest; size?: number; hashes?: ExtraHashes };
  contentType?: string;
  meta?: Record<string, unknown>;
  /** Refuse to replace an existing path (versioned packages). */
  immutable?: boolean;
  maxSize?: number;
  signal?: AbortSignal;
}

/** The one way bytes enter a local repo: stream into the CAS (hash, verify, publish), then the row. */
export async function putLocalFile(svc: Services, repo: RepoDef, path: string, src: Readable, o: PutOptions = {}): Promise<FileRec> {
  assertWritable(repo);
  if (o.immutable && (await svc.meta.files.get(repo.name, path))) {
    throw new AppError('CONFLICT', `${path} already exists in ${repo.name} and cannot be overwritten`);
  }
  const maxSize = o.maxSize ?? (svc.config.uploads.max_size || undefined);
  let rec: FileRec | undefined;
  // The row is written in the publishing transaction: no moment exists in which gc could see the
  // new blob unreferenced, whatever gc.grace is.
  await ingestStream(svc, src, { expect: o.expect, maxSize, signal: o.signal }, async (m, s) => {
    rec = await writeLocalRow(m, repo, path, s.digest, s.size, o);
  });
  noted(svc, 'file published', { repo: repo.name, path, digest: rec!.digest });
  return rec!;
}

/** Points a path of a local repo at a blob already in the store (cross-repo mounts, derived files). */
export async function recordLocalFile(svc: Services, repo: RepoDef, path: string, digest: Digest, size: number,
  o: Pick<PutOptions, 'contentType' | 'meta' | 'immutable'> = {}): Promise<FileRec> {
  const rec = await linkBlob(svc, digest, size, (m) => writeLocalRow(m, repo, path, digest, size, o));
  noted(svc, 'file recorded', { repo: repo.name, path, digest });
  return rec;
}

/** Writes a local row inside a transaction the caller holds (e.g. the one publishing its blob, see ingestStream). */
export async function writeLocalRow(m: MetaStore, repo: RepoDef, path: string, digest: Digest, size: number,
  o: Pick<PutOptions, 'contentType' | 'meta' | 'immutable'>): Promise<FileRec> {
  if (o.immutable && (await m.files.get(repo.name, path))) {
    throw new AppError('CONFLICT', `${path} already exists in ${repo.name} and cannot be overwritten`);
  }
  const now = Date.now();
  const rec: FileRec = { repo: repo.name, path, digest, size, contentType: o.contentType, source: 'local', fetchedAt: now, lastAccess: now, meta: o.meta };
  await m.files.put(rec);
  return rec;
}

export function assertWritable(repo: RepoDef): void {
  if (repo.kind !== 'local') throw new AppError('METHOD_NOT_ALLOWED', `${repo.name} is a ${repo.kind} repository; only local repositories accept writes`);
}

/** The local repo that receives a write sent to `repo`: itself, or a virtual repo's `default_local` member; else 405. */
export async function writeTarget(svc: Services, repo: RepoDef): Promise<RepoDef> {
  if (repo.kind === 'virtual' && typeof repo.options.default_local === 'string') {
    const target = await svc.repos.get(repo.options.default_local);
    if (target?.kind === 'local') return target;
  }
  assertWritable(repo);
  return repo;
}

/** The repo a read that precedes a write should see (npm's `?write=true`): a virtual repo's `default_local` member, else the repo itself. */
export async function readTarget(svc: Services, repo: RepoDef): Promise<RepoDef> {
  if (repo.kind !== 'virtual' || typeof repo.options.default_local !== 'string') return repo;
  const target = await svc.repos.get(repo.options.default_local);
  return target?.kind === 'local' ? target : repo;
}
