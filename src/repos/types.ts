import type { Readable } from 'node:stream';
import type { Digest } from '../lib/digest.js';
import type { BodyCheck, ExtraHashes } from '../lib/spool.js';
import type { FileRec, RepoDef } from '../storage/meta/types.js';

/** What a format asks a repo for: one stored file, addressed by its path in the repo. */
export interface FileRef {
  /** Storage key within the repo (also the default upstream path). */
  path: string;
  /** Remote: where to fetch it; default: the repo's upstream + path. May be async (a URL found in a cached index). */
  locate?: (repo: RepoDef) => string | null | Promise<string | null>;
  /** Mutable metadata: served for metadata_ttl, then revalidated. Immutable files are kept forever. */
  mutable?: boolean;
  /** Known digest/size/other hashes (from an index): verified before anything is cached. */
  expect?: { digest?: Digest; size?: number; hashes?: ExtraHashes; check?: BodyCheck };
  accept?: string;
  /** Upstream request headers (e.g. docker bearer tokens), computed per remote repo. */
  upstreamHeaders?: (repo: RepoDef) => Record<string, string> | Promise<Record<string, string>>;
  /** Content type to record when the upstream gives none. */
  contentType?: string;
  /** The caller reads the whole body anyway (documents): a first fetch is awaited, not tailed, so concurrent readers share the stored copy. */
  whole?: boolean;
  /** Refuse an HTML body where an artifact was expected (default: true unless mutable or the path is .html). */
  rejectHtml?: boolean;
  /**
   * Remote: a check that needs the whole stored body (a module zip's h1: hash against the checksum
   * database). Runs once the blob is in the store and before its row is written; a throw leaves
   * nothing recorded (the blob is unreferenced, for gc). Use with `whole`, so no client gets the
   * bytes before they are checked.
   */
  verify?: (repo: RepoDef, stored: { digest: Digest; size: number }) => Promise<void>;
  /**
   * Mutable files whose upstream names its current digest cheaply (docker: a manifest HEAD, which
   * does not count as a pull): asked first when a cached copy is due. The cached copy's digest
   * makes it fresh again without a download; another digest is what the download must hash to;
   * null (the upstream does not say) downloads.
   */
  probe?: (repo: RepoDef) => Promise<Digest | null>;
  /** Virtual repos (at every level) ask only the members this accepts (docker's `?ns=`: the local ones and that registry's remotes). */
  members?: (member: RepoDef) => boolean;
  /** Other paths of the repo that name the same bytes (docker: a tag's manifest by digest), recorded with the file when missing. */
  aliases?: (digest: Digest) => string[];
}

export type Source = 'local' | 'remote' | 'cache';

export interface Served {
  /** The stored row; during a first fetch, a provisional row whose digest is not known yet. */
  rec: FileRec;
  source: Source;
  /** The repo that actually had it (a virtual repo's member). */
  servedBy: string;
  /** Set when a stale copy was served because the upstream failed: seconds since it was fetched. */
  staleAge?: number;
  /** Bytes still arriving from the upstream (first fetch); otherwise read from the blob store by rec.digest. */
  body?: Readable;
  /** Size when known (Content-Length); undefined while streaming an upstream body of unknown length. */
  size?: number;
}
