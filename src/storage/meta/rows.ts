import type { Digest } from '../../lib/digest.js';
import type { BlobDeletion, BlobRec, FileRec, RepoDef, UploadSession } from './types.js';

/** Row <-> record mapping shared by the SQL adapters (same columns in both dialects). */
export type Row = Record<string, unknown>;

export function fileFromRow(r: Row): FileRec {
  return {
    repo: r.repo as string,
    path: r.path as string,
    digest: r.digest as Digest,
    size: Number(r.size),
    contentType: (r.content_type as string) ?? undefined,
    source: r.source as FileRec['source'],
    upstreamEtag: (r.upstream_etag as string) ?? undefined,
    upstreamLastModified: (r.upstream_last_modified as string) ?? undefined,
    fetchedAt: Number(r.fetched_at),
    lastAccess: Number(r.last_access),
    meta: r.meta ? JSON.parse(r.meta as string) : undefined,
  };
}

export function fileToParams(f: FileRec): unknown[] {
  return [f.repo, f.path, f.digest, f.size, f.contentType ?? null, f.source, f.upstreamEtag ?? null,
    f.upstreamLastModified ?? null, f.fetchedAt, f.lastAccess, f.meta ? JSON.stringify(f.meta) : null];
}

export function repoFromRow(r: Row): RepoDef {
  return {
    name: r.name as string,
    format: r.format as string,
    kind: r.kind as RepoDef['kind'],
    upstream: (r.upstream as string) ?? undefined,
    members: r.members ? JSON.parse(r.members as string) : undefined,
    options: JSON.parse((r.options as string) || '{}'),
    createdAt: Number(r.created_at),
  };
}

export function repoToParams(d: RepoDef): unknown[] {
  return [d.name, d.format, d.kind, d.upstream ?? null, d.members ? JSON.stringify(d.members) : null, JSON.stringify(d.options ?? {}), d.createdAt];
}

export function sessFromRow(r: Row): UploadSession {
  return { id: r.id as string, repo: r.repo as string, scope: r.scope as string, startedAt: Number(r.started_at) };
}

export function blobFromRow(r: Row): BlobRec {
  return { digest: r.digest as Digest, size: Number(r.size), lastTouched: Number(r.last_touched), ...(r.state === 'deleting' ? { deleting: true } : {}) };
}


/**
 * The least string above every string that starts with `prefix` (no prefix: above every path).
 * A prefix listing is then the key range [prefix, prefixEnd) with one bound on each side, so the
 * planner seeks the (repo, path) index instead of filtering a function of path. Code point
 * order throughout: SQLite's BINARY collation and Postgres' "C" agree on it.
 */
export function prefixEnd(prefix: string): string {
  const points = Array.from(prefix, (c) => c.codePointAt(0)!);
  while (points.length > 0) {
    let last = points.pop()! + 1;
    if (last >= 0xd800 && last <= 0xdfff) last = 0xe000;
    if (last <= 0x10ffff) return String.fromCodePoint(...points, last);
  }
  return String.fromCodePoint(0x10ffff).repeat(8);
}

export function deletionFromRow(r: Row | undefined): BlobDeletion {
  return { token: (r?.del_token as string | null | undefined) ?? null, deleting: r?.state === 'deleting' };
}
