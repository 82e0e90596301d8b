import type { Readable, Writable } from 'node:stream';
import type { Digest } from '../../lib/digest.js';
import type { ByteRange } from '../../lib/range.js';
import type { Growing } from '../../lib/tail.js';

export interface BlobStat {
  digest: Digest;
  size: number;
  createdAt: Date;
}

/**
 * New content that is written but not yet visible under its digest: a local
 * temp file (lib/spool.ts, docker upload sessions), or an object the store
 * wrote itself (`BlobStore.writer`).
 */
export type Staged = { file: string } | { object: string };

export interface BlobWriter {
  /** Takes the bytes; nothing is visible under a digest until `commit`, and an error or destroy keeps nothing. */
  stream: Writable;
  staged: Staged;
}

/** One part of a resumable upload, at `offset` of the whole. */
export interface Part {
  offset: number;
  size: number;
  staged: Staged;
}

/**
 * Resumable uploads (docker blob upload sessions): parts that outlive a request, kept where the
 * blobs are, so with a shared store any instance can take the next part. Ended by `drop`.
 */
export interface PartStore {
  /** A writer for the part at `offset`; on failure, `BlobStore.discard` its staged part. */
  open(session: string, offset: number): Promise<BlobWriter>;
  /** The session's parts in order (none: nothing uploaded yet). */
  list(session: string): Promise<Part[]>;
  read(p: Part): Promise<Readable>;
  drop(session: string): Promise<void>;
  /** Every session with parts, and when it last changed (gc: parts whose session row is gone). */
  sessions(): AsyncIterable<{ session: string; changedAt: number; bytes: number }>;
}

/** Leftover staging content that gc removed (or would, in a dry run). */
export interface StagingLeftover {
  name: string;
  bytes: number;
}

/**
 * Bytes, content-addressed by sha256, immutable once committed.
 * New content is written through `writer` (or spooled to a local temp file),
 * hashed and verified on the way by the caller, then `commit`ted. Callers wrap
 * commit in a metadata transaction so a concurrent gc cannot delete what is
 * being published.
 */
export interface BlobStore {
  /** Local temp space (on the same filesystem as the store where there is one). */
  readonly tempDir: string;
  readonly parts: PartStore;
  stat(d: Digest): Promise<BlobStat | null>;
  read(d: Digest, range?: ByteRange): Promise<Readable>;
  /**
   * Where new content goes while it streams in. `expected`: its digest when known before the
   * first byte; a store may then write in place, as long as nothing is visible before the
   * stream finishes (the caller fails the stream, never ends it, on a digest mismatch).
   */
  writer(expected?: Digest): BlobWriter;
  /**
   * Optional: slow work ahead of `commit`, outside the metadata transaction (upload a temp file,
   * copy a staging object into place). `commit` then only confirms the blob is there.
   */
  stage?(s: Staged, d: Digest, size: number): Promise<void>;
  /**
   * Makes staged content visible as `d` (consumes it); already present: the staged copy is dropped.
   * Runs inside the metadata transaction, so local work only (a rename), never a network call.
   */
  commit(s: Staged, d: Digest, size: number): Promise<void>;
  /** Drops staged content that will not be committed. */
  discard(s: Staged): Promise<void>;
  delete(d: Digest): Promise<void>;
  list(): AsyncIterable<BlobStat>;
  /**
   * Staging content of killed processes (temp dirs of dead processes at once; temp files, staging
   * objects and unfinished multipart uploads untouched since `before`, ms epoch): removed unless dryRun.
   */
  sweepStaging(before: number, dryRun: boolean): AsyncIterable<StagingLeftover>;
  /** Moves a blob that failed verification out of the store (fs: into `dir`, kept for a look; s3: deleted). */
  quarantine(d: Digest, dir: string): Promise<void>;
  /** Where a cache fill lands while readers follow it: a local temp file they tail, or a window in memory. */
  openFill(): Growing;
  /** Send-file capability: a local file holding the blob, for file I/O on the send path. Absent: stream `read`. */
  sendFile?(d: Digest): string;
  /** Where the bytes lie on local disk, for tools and tests (fs only). */
  localPath?(d: Digest): string;
  close?(): Promise<void>;
}
