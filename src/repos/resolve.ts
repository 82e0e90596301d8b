import { AppError, statusOf } from '../lib/errors.js';
import type { RepoDef } from '../storage/meta/types.js';
import { localFile } from './local.js';
import { remoteFile } from './remote.js';
import type { Services } from './services.js';
import type { FileRef, Served } from './types.js';
import { allLeaves, firstMember, LocalUnreadable, type Leaf } from './virtual.js';
import { collect } from '../lib/streams.js';

/** A file from any repo: the kind decides how (local rows, remote cache/fill, virtual members in order). */
export function resolveFile(svc: Services, repo: RepoDef, ref: FileRef, depth = 0): Promise<Served> {
  switch (repo.kind) {
    case 'local':
      return localFile(svc, repo, ref);
    case 'remote':
      return remoteFile(svc, repo, ref);
    case 'virtual':
      return narrowed(svc, repo, ref.members).then((from) => firstMember(svc, from, depth + 1, (m) => resolveFile(svc, m, ref, depth + 1)));
  }
}

/** A virtual repo with only the members `accept` lets through (all of them without it). */
async function narrowed(svc: Services, repo: RepoDef, accept: FileRef['members']): Promise<RepoDef> {
  if (!accept) return repo;
  const keep: string[] = [];
  for (const name of repo.members ?? []) {
    const m = await svc.repos.get(name);
    if (m && accept(m)) keep.push(name);
  }
  return { ...repo, members: keep };
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
  /**
   * Whole-repo indexes (helm index.yaml, APKINDEX, pypi `/simple/`): the entry-level form of the
   * same rule. A virtual repo drops, from every remote descendant's document, the entries of the
   * names that any local descendant's document lists (unless `allow_shadowed` lists them).
   */
  entries?: {
    /** The package names a document lists. */
    names(doc: T): Iterable<string>;
    /** A copy of the document without the entries of these names (documents are shared through caches: never mutate). */
    without(doc: T, names: ReadonlySet<string>): T;
  };
  /** Cap on the stored upstream original (default limits.metadata_body): npm packuments of busy packages run to tens of MiB. */
  maxBytes?: number;
  /**
   * Remote repos: keep parsed upstream originals in `svc.parsedDocs` under this name, keyed by the
   * stored blob's digest, so a large index is parsed once per upstream change, not per request.
   */
  cacheAs?: string;
  /** Local repos: build from stored rows (null: not found). */
  local(repo: RepoDef): Promise<T | null>;
  /** Remote repos: parse the stored upstream original (`key`: its blob digest, when known). */
  parseUpstream(repo: RepoDef, body: Buffer, key?: string): T;
  /** Remote repos: the parsed document of the stored original with this digest, if the format still holds it (not read again). */
  known?(key: string): T | undefined;
  /** Virtual repos: merge member documents (in member order; first member wins on conflicts). */
  merge(repo: RepoDef, parts: { member: RepoDef; doc: T }[]): T;
}

export interface ServedDoc<T> {
  doc: T;
  /** A merged document: `remote` when any part was fetched upstream for this request, else `cache` when any came from a cache. */
  source: Served['source'];
  servedBy: string;
  staleAge?: number;
  /** A merged document: where each part came from (the leaf repos, in member order). */
  parts?: { repo: string; source: Served['source'] }[];
}

/**
 * resolveDoc, with `empty` standing in for a document that no repo has (the Forge lists an unknown
 * module as no releases): sourced as the repo's own answer would be.
 */
export async function resolveDocOr<T>(svc: Services, repo: RepoDef, src: DocSource<T>, empty: T): Promise<ServedDoc<T>> {
  try {
    return await resolveDoc(svc, repo, src);
  } catch (err) {
    if (statusOf(err) !== 404) throw err;
    return { doc: empty, source: repo.kind === 'local' ? 'local' : 'remote', servedBy: repo.name };
  }
}

/** What a format does differently per kind where no shared resolver fits: one function per kind, chosen here. */
export type PerKind<R> = Record<RepoDef['kind'], (repo: RepoDef) => R>;

export function byKind<R>(repo: RepoDef, table: PerKind<R>): R {
  return table[repo.kind](repo);
}

/** byKind for a leaf (a local or remote repo: what repos/listed.ts listingLeaf hands over). */
export function byLeafKind<R>(leaf: RepoDef, table: Omit<PerKind<R>, 'virtual'>): R {
  if (leaf.kind === 'virtual') throw new AppError('INTERNAL', `${leaf.name} is a virtual repository, not a leaf`);
  return table[leaf.kind](leaf);
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
      const served = await remoteFile(svc, repo, { mutable: true, whole: true, ...src.ref });
      const key = served.body ? undefined : served.rec.digest;
      const cacheKey = key && src.cacheAs ? `${src.cacheAs}:${repo.name}:${key}` : undefined;
      const known = key ? (src.known?.(key) ?? (cacheKey ? (svc.parsedDocs.get(cacheKey) as T | undefined) : undefined)) : undefined;
      const doc = known ?? (await parseOnce(svc, repo, src, served, key, cacheKey));
      return { doc, source: served.source, servedBy: repo.name, staleAge: served.staleAge };
    }
    case 'virtual': {
      const kept = await leafDocs(svc, repo, src, depth);
      const doc = src.merge(repo, kept.map((p) => ({ member: p.member, doc: p.value.doc })));
      const sources = kept.flatMap((p) => p.value.parts ?? [{ repo: p.member.name, source: p.value.source }]);
      const source = (['remote', 'cache'] as const).find((x) => sources.some((p) => p.source === x)) ?? 'local';
      const stale = kept.map((p) => p.value.staleAge).filter((a) => a !== undefined);
      return { doc, source, servedBy: repo.name, parts: sources, staleAge: stale.length ? Math.max(...stale) : undefined };
    }
  }
}

/** Parses in progress, shared by concurrent readers of the same stored bytes (Services-owned, bounded). */
export const PARSING = { name: 'resolve.parsing', max: 1024 };

/** Reads and parses a stored document; concurrent requests for the same stored bytes share one read and parse. */
function parseOnce<T>(svc: Services, repo: RepoDef, src: DocSource<T>, served: Served, key: string | undefined, cacheKey?: string): Promise<T> {
  const run = async () => {
    const body = await readCapped(svc, served, src.maxBytes);
    const doc = src.parseUpstream(repo, body, key);
    // Parsed objects outweigh their source: counted at twice its size.
    if (cacheKey) svc.parsedDocs.set(cacheKey, doc, body.length * 2);
    return doc;
  };
  if (!key) return run();
  return svc.caches.flights<T>(PARSING.name, PARSING.max).run(`${repo.name}\0${src.ref.path}\0${key}`, run);
}

/**
 * The documents of a virtual repo's local and remote descendants, in member
 * order (depth first), shadowed remote ones dropped at every level. Merging
 * leaves rather than nested merges keeps the dependency-confusion rule true
 * through nested virtual repos: a name any local descendant holds is never
 * completed from any remote descendant.
 */
function leafDocs<T>(svc: Services, repo: RepoDef, src: DocSource<T>, depth: number): Promise<Leaf<ServedDoc<T>>[]> {
  return allLeaves(svc, repo, depth, (m) => resolveDoc(svc, m, src, depth + 1), (level, leaves) => {
    if (src.entries) return withoutShadowedEntries(level, src.entries, leaves);
    return src.packageName === undefined ? leaves : unshadowed(level, src.packageName, leaves);
  });
}

/** The entry-level rule: remote leaves' documents lose the names local leaves list. */
async function withoutShadowedEntries<T, L extends { member: RepoDef; value: ServedDoc<T> }>(repo: RepoDef, entries: NonNullable<DocSource<T>['entries']>, leaves: L[]): Promise<L[]> {
  const hidden = await shadowing(repo, leaves, (l) => entries.names(l.value.doc));
  return leaves.map((l) => {
    const names = hidden(l);
    return names.size ? { ...l, value: { ...l.value, doc: entries.without(l.value.doc, names) } } : l;
  });
}

const NONE: ReadonlySet<string> = new Set();

/**
 * The dependency-confusion rule over a virtual repo's leaves (local and remote repos, in member
 * order), for formats that merge whole-repo indexes: the names that local leaves list (`names`,
 * asked of local leaves only), less `allow_shadowed`, are the names a remote leaf must not offer.
 * Returns, per leaf, the names to drop from it.
 */
export async function shadowing<L extends { member: RepoDef }>(repo: RepoDef, leaves: L[],
  names: (leaf: L) => Iterable<string> | Promise<Iterable<string>>): Promise<(leaf: L) => ReadonlySet<string>> {
  const allowed = new Set((repo.options.allow_shadowed as string[] | undefined) ?? []);
  const owned = new Set<string>();
  for (const l of leaves) if (l.member.kind === 'local') for (const n of await names(l)) if (!allowed.has(n)) owned.add(n);
  return (l) => (l.member.kind === 'remote' ? owned : NONE);
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
