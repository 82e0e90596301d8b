import type { AuditStore } from './audit.js';
import type { SqlRunner } from './sql.js';
import type { Digest } from '../../lib/digest.js';

export type RepoKind = 'local' | 'remote' | 'virtual';

/** A repository definition. `options` holds per-repo settings (remote overrides, credentials, format extras). */
export interface RepoDef {
  name: string;
  format: string;
  kind: RepoKind;
  upstream?: string;
  members?: string[];
  options: Record<string, unknown>;
  createdAt: number;
}

/** One stored file of a repo: a path that points at a blob. Remote caches and local uploads alike. */
export interface FileRec {
  repo: string;
  path: string;
  digest: Digest;
  size: number;
  contentType?: string;
  source: 'local' | 'remote';
  /** Upstream validators, for revalidating mutable cached files. */
  upstreamEtag?: string;
  upstreamLastModified?: string;
  /** When it was last fetched from (or confirmed by) the upstream, or uploaded: ms since epoch. */
  fetchedAt: number;
  lastAccess: number;
  /** Format-specific facts (a wheel's requires-python, a manifest's media type...). */
  meta?: Record<string, unknown>;
}

export interface BlobRec {
  digest: Digest;
  size: number;
  lastTouched: number;
  /** A gc deletion of the bytes is under way (see MetaStore.blobs.deletion). */
  deleting?: boolean;
}

/**
 * Where a digest stands with gc deletions: `token` names the last deletion begun (null: none on
 * record), `deleting` says it has not finished. A publisher reads this before it establishes the
 * bytes and again under the digest's lock: the same token and no deletion under way means no
 * delete of these bytes ran in between (see storage/ingest.ts).
 */
export interface BlobDeletion {
  token: string | null;
  deleting: boolean;
}

export interface TxOptions {
  /**
   * Names to hold exclusively for the transaction (digests it publishes or sweeps). Two
   * transactions that share a name run one after the other, across every process on the
   * database; others run side by side (Postgres: transaction-scoped advisory locks; SQLite
   * serialises every write transaction anyway).
   */
  lock?: string[];
}

/** A resumable upload (docker chunked blob uploads). */
export interface UploadSession {
  id: string;
  repo: string;
  scope: string;
  startedAt: number;
}

export interface MetaStore {
  /** Short, atomic; exclusive per `o.lock` name across processes (sqlite: BEGIN IMMEDIATE, all of them). No network I/O inside. */
  tx<T>(fn: (m: MetaStore) => Promise<T>, o?: TxOptions): Promise<T>;
  repos: {
    get(name: string): Promise<RepoDef | null>;
    list(): Promise<RepoDef[]>;
    put(def: RepoDef): Promise<void>;
    remove(name: string): Promise<void>;
  };
  files: {
    get(repo: string, path: string): Promise<FileRec | null>;
    put(f: FileRec): Promise<void>;
    remove(repo: string, path: string): Promise<void>;
    /** Removes the row only if it still points at `digest` and was fetched at `fetchedAt` (a concurrent rewrite survives). */
    removeIf(repo: string, path: string, digest: Digest, fetchedAt: number): Promise<void>;
    /** Files of a repo, ordered by path; `prefix` filters by path prefix. */
    list(repo: string, prefix?: string): AsyncIterable<FileRec>;
    /** Every file row that points at a digest (verify/repair). */
    byDigest(d: Digest): Promise<FileRec[]>;
    /** Record reads for LRU eviction; batched by callers. */
    touch(entries: { repo: string; path: string; at: number }[]): Promise<void>;
    /** Total bytes a repo's rows point at. */
    totalSize(repo: string): Promise<number>;
    /** Least recently used first. */
    lru(repo: string, limit: number): Promise<FileRec[]>;
    removeRepo(repo: string): Promise<void>;
  };
  blobs: {
    touch(d: Digest, size: number, at?: number): Promise<void>;
    /** The blob's row (null when none, or when gc deleted the bytes). */
    get(d: Digest): Promise<BlobRec | null>;
    remove(d: Digest): Promise<void>;
    list(): AsyncIterable<BlobRec>;
    /** Blobs no file row points at and not touched since `before` (gc candidates; deletions under way included). */
    unreferenced(before: number): Promise<Digest[]>;
    deletion(d: Digest): Promise<BlobDeletion>;
    /** gc: marks the bytes as being deleted under a new `token` (publishers of `d` now wait). */
    beginDelete(d: Digest, size: number, token: string): Promise<void>;
    /** gc: the delete of `token` returned; the row stays as a tombstone until `purgeGone`. */
    endDelete(d: Digest, token: string): Promise<void>;
    /** Drops tombstones of deletions that ended before `before`. */
    purgeGone(before: number): Promise<number>;
  };
  sessions: {
    put(s: UploadSession): Promise<void>;
    get(id: string): Promise<UploadSession | null>;
    remove(id: string): Promise<void>;
    olderThan(t: number): Promise<UploadSession[]>;
    /** Open sessions of one repo. */
    count(repo: string): Promise<number>;
  };
  /** The audit trail (audit.ts). */
  audit: AuditStore;
  /** Statements written once for both dialects (sql.ts), for stores built on top (audit, identities). */
  sql: SqlRunner;
  ping(): Promise<void>;
  close(): Promise<void>;
}
