import type { Readable } from 'node:stream';
import type { Digest } from '../../lib/digest.js';
import type { ByteRange } from '../../lib/range.js';

export interface BlobStat {
  digest: Digest;
  size: number;
  createdAt: Date;
}

/**
 * Bytes, content-addressed by sha256, immutable once committed.
 * New content arrives as a spooled temp file (see lib/spool.ts) that `commit`
 * moves into the store; callers wrap commit in a metadata transaction so a
 * concurrent gc cannot delete what is being published.
 */
export interface BlobStore {
  /** Local temp space on the same filesystem as the store where possible. */
  readonly tempDir: string;
  stat(d: Digest): Promise<BlobStat | null>;
  read(d: Digest, range?: ByteRange): Promise<Readable>;
  /** Moves a verified temp file into the store (consumes it). Already present: the temp file is dropped. */
  commit(tempFile: string, d: Digest, size: number): Promise<void>;
  /**
   * Optional: copy a verified temp file into the store ahead of `commit`, outside the metadata
   * transaction (slow remote stores), keeping the temp file. `commit` then only confirms the
   * blob is still there (a gc may have removed an old copy meanwhile) and drops the temp file.
   */
  stage?(tempFile: string, d: Digest, size: number): Promise<void>;
  delete(d: Digest): Promise<void>;
  list(): AsyncIterable<BlobStat>;
  /** The blob's path on local disk, when the store is a local filesystem (fast send path). */
  localPath?(d: Digest): string;
  close?(): Promise<void>;
}
