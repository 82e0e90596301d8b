import { AppError } from '../lib/errors.js';
import type { RepoDef } from '../storage/meta/types.js';
import { localFile } from './local.js';
import { remoteFile } from './remote.js';
import { resolveDoc, type DocSource } from './resolve.js';
import type { Services } from './services.js';
import type { FileRef, Served } from './types.js';
import { MAX_DEPTH } from './virtual.js';

/**
 * A file that an index document lists: a tarball in a packument, a file on a simple page, a
 * chart in index.yaml, a package in an APKINDEX. The format says how to find the entry in its
 * document and what that entry says about the file; the kinds are written once, here.
 */
export interface ListedFile<T, E> {
  /** The document that lists the file, for every kind (repos/resolve.ts). */
  doc: DocSource<T>;
  /** The file's storage path in the repo. */
  path: string;
  /** The entry that lists the file; undefined when the document does not list it (404). */
  find(doc: T): E | undefined;
  /** Virtual repos: the member whose entry the merged document kept (it serves the file). */
  origin(doc: T, entry: E): string | undefined;
  /**
   * Remote repos: where to fetch the file and what it must match (digest, size, other hashes),
   * from the upstream's entry. Throws UPSTREAM_FAILED when the entry cannot be used (no http(s)
   * URL, a malformed digest, nothing to verify against).
   */
  upstream(repo: RepoDef, entry: E): Omit<FileRef, 'path'>;
  /** Remote repos: a copy already cached (verified when it was fetched) is served without reading the listing. */
  cachedFirst?: boolean;
  /** The 404 message: "<what> not found in <repo>". */
  what?: string;
}

/**
 * Local: the file's row. Remote: the cached copy, else located through the upstream's listing and
 * verified against what that listing says before anything is kept; concurrent misses share one
 * fill (repos/remote.ts). Virtual: from the member whose entry the merged document lists, so what
 * the document shows is what downloads and a shadowed remote entry is never served; nested
 * virtual repos recurse up to MAX_DEPTH.
 */
export async function resolveListed<T, E>(svc: Services, repo: RepoDef, f: ListedFile<T, E>, depth = 0): Promise<Served> {
  if (depth > MAX_DEPTH) throw new AppError('BAD_REQUEST', `virtual repositories nest deeper than ${MAX_DEPTH}`);
  const notFound = () => new AppError('NOT_FOUND', `${f.what ?? f.path} not found in ${repo.name}`);
  switch (repo.kind) {
    case 'local':
      return localFile(svc, repo, { path: f.path });
    case 'remote': {
      if (f.cachedFirst && (await svc.meta.files.get(repo.name, f.path))) return remoteFile(svc, repo, { path: f.path });
      const { doc } = await resolveDoc(svc, repo, f.doc, depth);
      const entry = f.find(doc);
      if (entry === undefined) throw notFound();
      return remoteFile(svc, repo, { rejectHtml: true, ...f.upstream(repo, entry), path: f.path });
    }
    case 'virtual': {
      const { doc } = await resolveDoc(svc, repo, f.doc, depth);
      const entry = f.find(doc);
      const name = entry === undefined ? undefined : f.origin(doc, entry);
      const member = name ? await svc.repos.get(name) : null;
      if (!member) throw notFound();
      return resolveListed(svc, member, f, depth + 1);
    }
  }
}

/** An upstream entry's URL, when it is http(s); else UPSTREAM_FAILED naming the file. */
export function httpUrl(url: string | undefined, what: string, base?: string): string {
  let u: URL | undefined;
  try {
    u = new URL(url ?? '', base);
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) throw new AppError('UPSTREAM_FAILED', `upstream lists no http(s) URL for ${what}`);
  return u.toString();
}
