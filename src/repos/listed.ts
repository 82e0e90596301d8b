import { AppError } from '../lib/errors.js';
import type { RepoDef } from '../storage/meta/types.js';
import { localFile } from './local.js';
import { remoteFile } from './remote.js';
import { resolveDoc, resolveFile, type DocSource, type ServedDoc } from './resolve.js';
import type { Services } from './services.js';
import type { FileRef, Served } from './types.js';
import { firstMember, MAX_DEPTH, nullIfNotFound } from './virtual.js';

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
   * URL, a malformed digest, nothing to verify against). Not needed with `unlisted`.
   */
  upstream?(repo: RepoDef, entry: E): Omit<FileRef, 'path'>;
  /** Remote repos: a copy already cached (verified when it was fetched) is served without reading the listing. */
  cachedFirst?: boolean;
  /**
   * Files the document need not list (go's pseudo-versions and branch queries): a remote repo
   * fetches the file as this says without reading the document, and a virtual repo whose document
   * does not list it asks its members in order; only local ones when a local descendant has the
   * package (DocSource.packageName) and `allow_shadowed` does not name it.
   */
  unlisted?(repo: RepoDef): Promise<Omit<FileRef, 'path'>>;
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
      if (f.unlisted) return remoteFile(svc, repo, { rejectHtml: true, ...(await f.unlisted(repo)), path: f.path });
      if (f.cachedFirst && (await svc.meta.files.get(repo.name, f.path))) return remoteFile(svc, repo, { path: f.path });
      const { doc } = await resolveDoc(svc, repo, f.doc, depth);
      const entry = f.find(doc);
      if (entry === undefined || !f.upstream) throw notFound();
      return remoteFile(svc, repo, { rejectHtml: true, ...f.upstream(repo, entry), path: f.path });
    }
    case 'virtual': {
      const served = f.unlisted ? await resolveDoc(svc, repo, f.doc, depth).catch(nullIfNotFound) : await resolveDoc(svc, repo, f.doc, depth);
      const entry = served ? f.find(served.doc) : undefined;
      const name = entry === undefined ? undefined : f.origin(served!.doc, entry);
      const member = name ? await svc.repos.get(name) : null;
      if (member) return resolveListed(svc, member, f, depth + 1);
      if (!f.unlisted) throw notFound();
      // Shadowed: local descendants only, at every level.
      if (served && shadows(repo, f.doc.packageName, served)) return resolveFile(svc, repo, { path: f.path, members: (m) => m.kind !== 'remote' }, depth);
      return firstMember(svc, repo, depth + 1, (m) => resolveListed(svc, m, f, depth + 1));
    }
  }
}

/** Whether a merged document's package is one a local descendant has (`parts` sourced `local`) and `allow_shadowed` does not name. */
function shadows(repo: RepoDef, packageName: string | undefined, served: ServedDoc<unknown>): boolean {
  const allowed = (repo.options.allow_shadowed as string[] | undefined) ?? [];
  return packageName !== undefined && !allowed.includes(packageName) && !!served.parts?.some((p) => p.source === 'local');
}

/**
 * The local or remote repo that serves an entry of a listing: the repo itself, or for a virtual
 * repo the leaf member whose entry its merged document kept (`memberOf`), so a shadowed or unlisted
 * entry is never served. 404 "<what> not found in <repo>" when the merged document lists none.
 */
export async function listingLeaf<T>(svc: Services, repo: RepoDef, doc: DocSource<T>, memberOf: (doc: T) => string | undefined, what: string): Promise<RepoDef> {
  if (repo.kind !== 'virtual') return repo;
  const name = memberOf((await resolveDoc(svc, repo, doc)).doc);
  const leaf = name ? await svc.repos.get(name) : null;
  if (!leaf) throw new AppError('NOT_FOUND', `${what} not found in ${repo.name}`);
  return leaf;
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
