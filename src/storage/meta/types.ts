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
}

/** A resumable upload (docker chunked blob uploads). */
export interface UploadSession {
  id: string;
  repo: string;
  scope: string;
  startedAt: number;
}

export interface MetaStore {
  /** Short, exclusive across processes (sqlite: BEGIN IMMEDIATE; postgres: a transaction with an advisory lock). No network I/O inside. */
  tx<T>(fn: (m: MetaStore) => Promise<T>): Promise<T>;
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
    get(d: Digest): Promise<BlobRec | null>;
    remove(d: Digest): Promise<void>;
    list(): AsyncIterable<BlobRec>;
    /** Blobs no file row points at and not touched since `before` (gc candidates). */
    unreferenced(before: number): Promise<Digest[]>;
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
