import semver from 'semver';
import { parseJson } from '../../lib/decode.js';
import { AppError } from '../../lib/errors.js';
import type { DocSource } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import { mergeEntries } from '../../repos/virtual.js';
import type { FileRec, RepoDef } from '../../storage/meta/types.js';
import { moduleMetadata, releaseSlug, type ModuleMetadata } from './metadata.js';

export const JSON_TYPE = 'application/json';
/** The Forge's largest page; a remote repo asks its upstream for one page of the newest releases. */
export const MAX_LIMIT = 100;
const DEFAULT_LIMIT = 20;

/** One module release as this server knows it, whichever kind of repo holds it. */
export interface Release {
  /** `owner-name` */
  name: string;
  version: string;
  metadata: ModuleMetadata;
  /** Tarball name under `v3/files/`: `owner-name-version.tar.gz`. */
  file: string;
  sha256?: string;
  md5?: string;
  size?: number;
  created?: string;
  /** Remote: the tarball's `file_uri` as the upstream lists it (a path under the Forge root, or a URL). */
  upstreamUri?: string;
  /** Published in a local repo (the shadowing rule of virtual repos). */
  local: boolean;
  /** Virtual: the member that listed it, which serves it. */
  member?: string;
}

/** A module's releases, newest first. */
export interface ModuleReleases {
  name: string;
  releases: Release[];
}

export function tarballName(name: string, version: string): string {
  return `${releaseSlug(name, version)}.tar.gz`;
}

/** Where a local repo stores a release's tarball (its row also carries the metadata). */
export function tarballPath(name: string, version: string): string {
  return `v3/files/${tarballName(name, version)}`;
}

/**
 * A URL of the upstream Forge for a path the Forge gives (`/v3/...`): appended to the configured
 * root, as puppet appends paths to `--module_repository`; absolute URLs are taken as they are.
 */
export function upstreamUrl(svc: Services, repo: RepoDef, path: string): string {
  if (/^https?:\/\//i.test(path)) return path;
  const root = svc.repos.upstreamSettings(repo).upstream.replace(/\/+$/, '');
  return `${root}/${path.replace(/^\/+/, '')}`;
}

function byVersionDesc(a: Release, b: Release): number {
  return semver.rcompare(a.version, b.version);
}

function fromRow(f: FileRec): Release | null {
  if (f.meta?.kind !== 'release') return null;
  const metadata = f.meta.metadata as ModuleMetadata;
  return {
    name: metadata.name, version: metadata.version, metadata, file: tarballName(metadata.name, metadata.version),
    sha256: f.digest.slice(7), size: f.size, created: new Date(f.fetchedAt).toISOString(), local: true,
  };
}

const hex = (v: unknown, len: number) => (typeof v === 'string' && new RegExp(`^[a-f0-9]{${len}}$`).test(v) ? v : undefined);

/** One release of an upstream's JSON; null when puppet could not use it (bad metadata, no checksum). */
function fromUpstream(r: Record<string, unknown>, what: string): Release | null {
  let metadata: ModuleMetadata;
  try {
    metadata = moduleMetadata(r.metadata, what);
  } catch {
    return null;
  }
  const sha256 = hex(r.file_sha256, 64);
  const md5 = hex(r.file_md5, 32);
  if (typeof r.file_uri !== 'string' || (!sha256 && !md5)) return null;
  return {
    name: metadata.name, version: metadata.version, metadata, file: tarballName(metadata.name, metadata.version),
    sha256, md5, size: typeof r.file_size === 'number' ? r.file_size : undefined,
    created: typeof r.created_at === 'string' ? r.created_at : undefined, upstreamUri: r.file_uri, local: false,
  };
}

/** Every release of one module, for each kind (see repos/resolve.ts). */
export function moduleSource(svc: Services, name: string): DocSource<ModuleReleases> {
  return {
    // A module a local member publishes hides remote releases of it (repos/resolve.ts).
    packageName: name,
    ref: {
      path: `v3/modules/${name}/releases.json`, mutable: true, contentType: JSON_TYPE, accept: JSON_TYPE,
      locate: (repo) => upstreamUrl(svc, repo, `/v3/releases?module=${name}&limit=${MAX_LIMIT}&sort_by=version`),
    },
    cacheAs: 'puppet-releases',
    async local(repo) {
      const releases: Release[] = [];
      for await (const f of svc.meta.files.list(repo.name, `v3/files/${name}-`)) {
        const r = fromRow(f);
        if (r && r.name === name) releases.push(r);
      }
      return releases.length ? { name, releases: releases.sort(byVersionDesc) } : null;
    },
    parseUpstream(repo, body) {
      const what = `upstream of ${repo.name}`;
      const results = (parseJson(body, 'UPSTREAM_FAILED', `${what} is not JSON`) as { results?: unknown })?.results;
      if (!Array.isArray(results)) throw new AppError('UPSTREAM_FAILED', `${what}: release list has no results`);
      const releases = results.map((r) => (r && typeof r === 'object' ? fromUpstream(r as Record<string, unknown>, what) : null))
        .filter((r): r is Release => r !== null && r.name === name);
      return { name, releases: releases.sort(byVersionDesc) };
    },
    merge(repo, parts) {
      const lists = parts.map((p) => ({ member: p.member, entries: p.doc.releases }));
      return { name, releases: mergeEntries(lists, (r) => r.name, (r) => r.version).sort(byVersionDesc) };
    },
  };
}

/** One release of a local or remote repo (virtual repos find theirs through the merged module document). */
export function releaseSource(svc: Services, name: string, version: string): DocSource<Release> {
  const slug = releaseSlug(name, version);
  return {
    ref: { path: `v3/releases/${slug}.json`, mutable: true, contentType: JSON_TYPE, accept: JSON_TYPE, locate: (repo) => upstreamUrl(svc, repo, `/v3/releases/${slug}`) },
    async local(repo) {
      const f = await svc.meta.files.get(repo.name, tarballPath(name, version));
      return f ? fromRow(f) : null;
    },
    parseUpstream(repo, body) {
      const what = `upstream of ${repo.name}`;
      const doc = parseJson(body, 'UPSTREAM_FAILED', `${what} is not JSON`);
      const r = doc && typeof doc === 'object' ? fromUpstream(doc as Record<string, unknown>, what) : null;
      if (!r || r.name !== name || r.version !== version) throw new AppError('UPSTREAM_FAILED', `${what}: release ${slug} is not usable`);
      return r;
    },
    merge(_repo, parts) {
      return { ...parts[0].doc, member: parts[0].member.name };
    },
  };
}

function owner(name: string) {
  const o = name.split('-')[0];
  return { uri: `/v3/users/${o}`, slug: o, username: o };
}

/** A release as the Forge renders it; every URI is a path under the repo URL (puppet and r10k append them). */
export function renderRelease(r: Release, exclude: Set<string> = new Set()): Record<string, unknown> {
  const slug = releaseSlug(r.name, r.version);
  const out: Record<string, unknown> = {
    uri: `/v3/releases/${slug}`, slug,
    module: { uri: `/v3/modules/${r.name}`, slug: r.name, name: r.name.split('-')[1], deprecated_at: null, owner: owner(r.name) },
    version: r.version, metadata: r.metadata, tags: [], supported: false,
    file_uri: `/v3/files/${r.file}`, file_size: r.size ?? null,
    ...(r.md5 ? { file_md5: r.md5 } : {}), ...(r.sha256 ? { file_sha256: r.sha256 } : {}),
    downloads: 0, readme: null, changelog: null, license: null,
    created_at: r.created ?? null, updated_at: r.created ?? null, deleted_at: null,
  };
  for (const k of exclude) delete out[k];
  return out;
}

/** `GET /v3/modules/<name>`: the module with its newest release and the list of all. */
export function renderModule(mod: ModuleReleases): Record<string, unknown> {
  const [current] = mod.releases;
  const meta = current.metadata;
  return {
    uri: `/v3/modules/${mod.name}`, slug: mod.name, name: mod.name.split('-')[1], owner: owner(mod.name),
    downloads: 0, created_at: mod.releases.at(-1)!.created ?? null, updated_at: current.created ?? null,
    deprecated_at: null, deprecated_for: null, superseded_by: null, supported: false, endorsement: null, module_group: 'base',
    homepage_url: typeof meta.project_page === 'string' ? meta.project_page : null,
    issues_url: typeof meta.issues_url === 'string' ? meta.issues_url : null,
    current_release: renderRelease(current),
    releases: mod.releases.map((r) => ({
      uri: `/v3/releases/${releaseSlug(r.name, r.version)}`, slug: releaseSlug(r.name, r.version), version: r.version,
      supported: false, created_at: r.created ?? null, deleted_at: null, file_uri: `/v3/files/${r.file}`, file_size: r.size ?? null,
    })),
  };
}

/**
 * `GET /v3/releases?module=<name>`: one page of the releases, newest first. `pagination` links are
 * paths under the repo URL with the request's own parameters, so puppet follows `next` back here.
 */
export function renderReleasePage(mod: ModuleReleases, query: URLSearchParams): Record<string, unknown> {
  const num = (k: string, dflt: number) => {
    const v = query.get(k);
    if (v === null || v === '') return dflt;
    if (!/^[0-9]+$/.test(v)) throw new AppError('BAD_REQUEST', `${k} must be a non-negative integer`);
    return Number(v);
  };
  const limit = Math.min(Math.max(num('limit', DEFAULT_LIMIT), 1), MAX_LIMIT);
  const offset = num('offset', 0);
  const total = mod.releases.length;
  const link = (o: number) => {
    const q = new URLSearchParams(query);
    q.set('limit', String(limit));
    q.set('offset', String(o));
    return `/v3/releases?${q.toString()}`;
  };
  const exclude = new Set((query.get('exclude_fields') ?? '').split(/[\s,]+/).filter(Boolean));
  return {
    pagination: {
      limit, offset, first: link(0), previous: offset > 0 ? link(Math.max(offset - limit, 0)) : null,
      current: link(offset), next: offset + limit < total ? link(offset + limit) : null, total,
    },
    results: mod.releases.slice(offset, offset + limit).map((r) => renderRelease(r, exclude)),
  };
}
