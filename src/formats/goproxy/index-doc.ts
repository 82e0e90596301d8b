import type { DocSource } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import { mergeEntries } from '../../repos/virtual.js';
import type { RepoDef } from '../../storage/meta/types.js';
import { compareVersions, isCanonicalVersion } from './module.js';

/** One version a repo lists for a module, with where it came from. */
export interface ListedVersion {
  version: string;
  /** Virtual: the leaf member that lists it, which serves its .info/.mod/.zip. */
  member?: string;
}

/** `<module>/@v/list` parsed: versions ascending by semver. */
export interface VersionList {
  module: string;
  versions: ListedVersion[];
}

export const paths = {
  list: (mod: string) => `${mod}/@v/list`,
  latest: (mod: string) => `${mod}/@latest`,
  file: (mod: string, version: string, ext: 'info' | 'mod' | 'zip') => `${mod}/@v/${version}.${ext}`,
};

/** Row meta of an uploaded module zip: what @v/list and @latest are built from. */
export interface ZipMeta {
  kind: 'gozip';
  module: string;
  version: string;
  time: string;
}

function sorted(module: string, versions: ListedVersion[]): VersionList {
  return { module, versions: versions.sort((a, b) => compareVersions(a.version, b.version)) };
}

/** A local repo's versions of a module: its uploaded zips' rows. */
export async function localList(svc: Services, repo: RepoDef, escapedModule: string): Promise<VersionList | null> {
  const versions: ListedVersion[] = [];
  for await (const f of svc.meta.files.list(repo.name, `${escapedModule}/@v/`)) {
    const meta = f.meta as ZipMeta | undefined;
    if (meta?.kind === 'gozip' && f.path === paths.file(escapedModule, meta.version, 'zip')) versions.push({ version: meta.version });
  }
  return versions.length ? sorted(escapedModule, versions) : null;
}

/** An upstream's @v/list: one version per line; lines go itself would not accept are dropped. */
export function parseList(module: string, body: Buffer): VersionList {
  const seen = new Set<string>();
  for (const line of body.toString('utf8').split('\n')) {
    const v = line.trim().split(/\s+/)[0];
    if (v && isCanonicalVersion(v)) seen.add(v);
  }
  return sorted(module, [...seen].map((version) => ({ version })));
}

/** Union of member lists: first member wins per version, local modules shadow remote ones unless allow-listed. */
export function mergeLists(repo: RepoDef, module: string, parts: { member: RepoDef; doc: VersionList }[]): VersionList {
  const lists = parts.map((p) => ({ member: p.member, entries: p.doc.versions.map((v) => ({ ...v, member: v.member ?? p.member.name })) }));
  const merged = mergeEntries(lists, () => module, (e) => e.version)
    .map((e) => ({ version: e.version, member: e.member }));
  return sorted(module, merged);
}

export function renderList(list: VersionList): string {
  return list.versions.map((v) => `${v.version}\n`).join('');
}

/**
 * How each kind answers `<module>/@v/list`: local rows, the upstream's list (cached with the TTL,
 * stale when the upstream is down), or the members' union. `packageName` is the module path, so
 * repos/resolve.ts drops remote lists of a module a local member publishes.
 */
export function listSource(svc: Services, escapedModule: string, modulePath: string): DocSource<VersionList> {
  return {
    ref: { path: paths.list(escapedModule), mutable: true, contentType: 'text/plain; charset=utf-8', locate: (r) => upstreamUrl(svc, r, paths.list(escapedModule)) },
    packageName: modulePath,
    local: (repo) => localList(svc, repo, escapedModule),
    parseUpstream: (_repo, body) => parseList(escapedModule, body),
    merge: (repo, parts) => mergeLists(repo, escapedModule, parts),
  };
}

/** An upstream URL for a path under a GOPROXY root: module paths are already URL-safe once case-encoded. */
export function upstreamUrl(svc: Services, repo: RepoDef, path: string): string {
  return `${svc.repos.upstreamSettings(repo).upstream.replace(/\/*$/, '/')}${path}`;
}
