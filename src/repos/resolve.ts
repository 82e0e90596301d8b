import { AppError, statusOf } from '../lib/errors.js';
import type { RepoDef } from '../storage/meta/types.js';
import { localFile } from './local.js';
import { remoteFile } from './remote.js';
import type { Services } from './services.js';
import type { FileRef, Served } from './types.js';
import { allMembers, firstMember, LocalUnreadable } from './virtual.js';
import { collect } from '../lib/streams.js';

/** A file from any repo: the kind decides how (local rows, remote cache/fill, virtual members in order). */
export function resolveFile(svc: Services, repo: RepoDef, ref: FileRef, depth = 0): Promise<Served> {
  switch (repo.kind) {
    case 'local':
      return localFile(svc, repo, ref);
    case 'remote':
      return remoteFile(svc, repo, ref);
    case 'virtual':
      return firstMember(svc, repo, depth + 1, (m) => resolveFile(svc, m, ref, depth + 1));
  }
}

/**
 * How a format builds one metadata document (a simple page, a packument, a
 * tag list) for each kind. `T` is the format's parsed form; the format renders
 * it per request, so URLs written into it follow the request's base URL and
 * only the upstream's original is ever stored.
 */
export interface DocSource<T> {
  /** Key of the document: also the path under which a remote repo caches the upstream original. */
  ref: FileRef;
  /**
   * The package name this document is about (pypi project, npm package). When set, a virtual repo
   * applies the dependency-confusion rule: if a local member has the name, remote members' documents
   * for it are dropped, unless the virtual repo's `allow_shadowed` lists the name.
   */
  packageName?: string;
  /** Cap on the stored upstream original (default limits.metadata_body): npm packuments of busy packages run to tens of MiB. */
  maxBytes?: number;
  /** Local repos: build from stored rows (null: not found). */
  local(repo: RepoDef): Promise<T | null>;
  /** Remote repos: parse the stored upstream original. */
  parseUpstream(repo: RepoDef, body: Buffer): T;
  /** Virtual repos: merge member documents (in member order; first member wins on conflicts). */
  merge(repo: RepoDef, parts: { member: RepoDef; doc: T }[]): T;
}

export interface ServedDoc<T> {
  doc: T;
  source: Served['source'];
  servedBy: string;
  staleAge?: number;
}

export async function resolveDoc<T>(svc: Services, repo: RepoDef, src: DocSource<T>, depth = 0): Promise<ServedDoc<T>> {
  switch (repo.kind) {
    case 'local': {
      // local() answers null for a name it does not hold; a 404 or 5xx thrown (a lost blob, a failing
      // store) means it holds data it cannot read.
      const doc = await src.local(repo).catch((err) => {
        if (statusOf(err) < 500 && statusOf(err) !== 404) throw err;
        svc.log.error({ repo: repo.name, path: src.ref.path, err }, 'local document unreadable');
        throw new LocalUnreadable(repo.name);
      });
      if (doc === null) throw new AppError('NOT_FOUND', `${src.ref.path} not found in ${repo.name}`);
      return { doc, source: 'local', servedBy: repo.name };
    }
    case 'remote': {
      const served = await remoteFile(svc, repo, { mutable: true, ...src.ref });
      const body = await readCapped(svc, served, src.maxBytes);
      return { doc: src.parseUpstream(repo, body), source: served.source, servedBy: repo.name, staleAge: served.staleAge };
    }
    case 'virtual': {
      const leaves = await leafDocs(svc, repo, src, depth);
      return { doc: src.merge(repo, leaves.map((p) => ({ member: p.member, doc: p.value.doc }))), source: 'local', servedBy: repo.name };
    }
  }
}

/**
 * The documents of a virtual repo's local and remote descendants, in member
 * order (depth first), shadowed remote ones dropped at every level. Merging
 * leaves rather than nested merges keeps the dependency-confusion rule true
 * through nested virtual repos: a name any local descendant holds is never
 * completed from any remote descendant.
 */
async function leafDocs<T>(svc: Services, repo: RepoDef, src: DocSource<T>, depth: number): Promise<{ member: RepoDef; value: ServedDoc<T> }[]> {
  const parts = await allMembers(svc, repo, depth + 1, async (m) =>
    m.kind === 'virtual' ? leafDocs(svc, m, src, depth + 1) : [{ member: m, value: await resolveDoc(svc, m, src, depth + 1) }]);
  const leaves = parts.flatMap((p) => p.value);
  return src.packageName === undefined ? leaves : unshadowed(repo, src.packageName, leaves);
}

/** Reads a served file fully into memory, refusing more than limits.metadata_body (413). */
export async function readCapped(svc: Services, served: Served, cap = svc.config.limits.metadata_body): Promise<Buffer> {
  if (served.size !== undefined && served.size > cap) {
    served.body?.destroy();
    throw new AppError('TOO_LARGE', `document is larger than the ${cap}-byte limit`);
  }
  return collect(served.body ?? (await svc.blob.read(served.rec.digest)), { max: cap, what: 'document' });
}

/**
 * Safe by default against dependency confusion: a name that a local repo
 * publishes is never completed from remote repos (the public registry),
 * unless the virtual repo allow-lists it in `allow_shadowed`. `parts` are
 * leaves (local or remote repos, see leafDocs).
 */
export function unshadowed<P extends { member: RepoDef }>(repo: RepoDef, packageName: string, parts: P[]): P[] {
  const allowed = (repo.options.allow_shadowed as string[] | undefined) ?? [];
  if (allowed.includes(packageName) || !parts.some((p) => p.member.kind === 'local')) return parts;
  return parts.filter((p) => p.member.kind !== 'remote');
}
