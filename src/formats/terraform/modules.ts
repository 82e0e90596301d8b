import type { Readable } from 'node:stream';
import { isContainedPath } from '../../lib/archive-paths.js';
import { AppError } from '../../lib/errors.js';
import { collect } from '../../lib/streams.js';
import { readTgzEntries } from '../../lib/tgz.js';
import { recordLocalFile } from '../../repos/local.js';
import { byLeafKind, resolveFile, type DocSource } from '../../repos/resolve.js';
import { listingLeaf } from '../../repos/listed.js';
import type { Services } from '../../repos/services.js';
import type { Served, Source } from '../../repos/types.js';
import { mergeEntries } from '../../repos/virtual.js';
import { ingestStream } from '../../storage/ingest.js';
import type { RepoDef } from '../../storage/meta/types.js';
import { serviceBase } from './discovery.js';
import { byVersionDesc, checkVersion, JSON_TYPE, moduleDir, upstreamJson, TGZ_TYPE, ZIP_TYPE, type ModuleAddr } from './names.js';
import { zipFacts } from './zipfacts.js';

export type ArchiveExt = 'tar.gz' | 'zip';

export interface ModuleVersion {
  version: string;
  local: boolean;
  member?: string;
}

interface ModuleRow {
  kind: 'module';
  version: string;
  ext: ArchiveExt;
}

export const archivePath = (m: ModuleAddr, version: string, ext: ArchiveExt) => `${moduleDir(m)}/${version}.${ext}`;
const typeOf = (ext: ArchiveExt) => (ext === 'zip' ? ZIP_TYPE : TGZ_TYPE);

async function localModuleVersions(svc: Services, repo: RepoDef, m: ModuleAddr): Promise<ModuleVersion[] | null> {
  const out: ModuleVersion[] = [];
  for await (const f of svc.meta.files.list(repo.name, `${moduleDir(m)}/`)) {
    const row = f.meta as ModuleRow | undefined;
    if (row?.kind === 'module') out.push({ version: row.version, local: true });
  }
  return out.length ? out.sort(byVersionDesc) : null;
}

function parseUpstreamModuleVersions(body: Buffer, what: string): ModuleVersion[] {
  const doc = upstreamJson(body, what) as { modules?: { versions?: unknown }[] };
  if (!doc || !Array.isArray(doc.modules)) throw new AppError('UPSTREAM_FAILED', `${what} has no modules list`);
  const out: ModuleVersion[] = [];
  const seen = new Set<string>();
  for (const mod of doc.modules) {
    for (const v of Array.isArray(mod?.versions) ? (mod.versions as Record<string, unknown>[]) : []) {
      if (typeof v?.version !== 'string' || seen.has(v.version)) continue;
      try {
        checkVersion(v.version);
      } catch {
        continue;
      }
      seen.add(v.version);
      out.push({ version: v.version, local: false });
    }
  }
  return out.sort(byVersionDesc);
}

export function moduleVersionsSource(svc: Services, m: ModuleAddr): DocSource<ModuleVersion[]> {
  const name = `${m.namespace}/${m.name}/${m.system}`;
  return {
    packageName: name,
    ref: {
      path: `${moduleDir(m)}/versions`, mutable: true, contentType: JSON_TYPE,
      locate: async (repo) => `${await serviceBase(svc, repo, 'modules.v1')}${name}/versions`,
    },
    local: (repo) => localModuleVersions(svc, repo, m),
    parseUpstream: (repo, body) => parseUpstreamModuleVersions(body, `${repo.name}: upstream versions of module ${name}`),
    merge: (repo, parts) => mergeEntries(parts.map((x) => ({ member: x.member, entries: x.doc })), () => name, (e) => e.version).sort(byVersionDesc),
  };
}

export function renderModuleVersions(m: ModuleAddr, list: ModuleVersion[]): Record<string, unknown> {
  return { modules: [{ source: `${m.namespace}/${m.name}/${m.system}`, versions: list.map((v) => ({ version: v.version })) }] };
}

function leafFor(svc: Services, repo: RepoDef, m: ModuleAddr, version: string): Promise<RepoDef> {
  return listingLeaf(svc, repo, moduleVersionsSource(svc, m), (doc) => doc.find((e) => e.version === version)?.member,
    `module ${m.namespace}/${m.name}/${m.system} ${version}`);
}

/** An http(s) archive location go-getter would download and unpack itself: the part we cache. */
export interface ArchiveLocation {
  /** The archive's URL (go-getter's `//subdir` removed). */
  url: string;
  ext: ArchiveExt;
  /** go-getter's `//subdir` (with its leading `//`), or ''. */
  subdir: string;
}

/**
 * An X-Terraform-Get value that names an http(s) archive (by its file name or `?archive=`):
 * those are cached and rewritten. Anything else (git::, s3::, github.com/…, a plain page)
 * is passed through to the client untouched.
 */
export function archiveOf(location: string): ArchiveLocation | null {
  if (!/^https?:\/\//i.test(location)) return null;
  let u: URL;
  try {
    u = new URL(location);
  } catch {
    return null;
  }
  let path = u.pathname;
  let subdir = '';
  const cut = path.indexOf('//');
  if (cut >= 0) {
    subdir = path.slice(cut);
    path = path.slice(0, cut);
  }
  const hint = u.searchParams.get('archive');
  const ext: ArchiveExt | null = hint ? (hint === 'zip' ? 'zip' : hint === 'tar.gz' || hint === 'tgz' ? 'tar.gz' : null)
    : /\.zip$/i.test(path) ? 'zip' : /\.(tar\.gz|tgz)$/i.test(path) ? 'tar.gz' : null;
  if (!ext) return null;
  u.pathname = path;
  return { url: u.toString(), ext, subdir };
}

/** Asks a remote repo's upstream where a module version is (X-Terraform-Get, or a JSON `location`): not cached. */
async function upstreamLocation(svc: Services, repo: RepoDef, m: ModuleAddr, version: string): Promise<string> {
  const settings = svc.repos.upstreamSettings(repo);
  const url = `${await serviceBase(svc, repo, 'modules.v1')}${m.namespace}/${m.name}/${m.system}/${version}/download`;
  const r = await svc.upstream.fetchRaw(settings, url, { accept: JSON_TYPE });
  try {
    if (r.status === 404 || r.status === 410) throw new AppError('NOT_FOUND', `module ${m.namespace}/${m.name}/${m.system} ${version} not found upstream of ${repo.name}`);
    if (r.status < 200 || r.status > 299) throw new AppError('UPSTREAM_FAILED', `upstream answered ${r.status}`);
    let location = r.headers['x-terraform-get'];
    if (!location && r.status === 200) {
      const body = await collect(r.body, { max: 64 * 1024, what: 'upstream module download answer' });
      const doc = upstreamJson(body, `${repo.name}: upstream module download answer`) as { location?: unknown };
      if (typeof doc?.location === 'string') location = doc.location;
    }
    if (!location) throw new AppError('UPSTREAM_FAILED', `${repo.name}: the upstream gave no X-Terraform-Get for ${m.namespace}/${m.name}/${m.system} ${version}`);
    // As terraform does: only values that look like relative URLs are resolved against the download URL.
    if (/^(\/|\.\/|\.\.\/)/.test(location)) location = new URL(location, r.url).toString();
    return location;
  } finally {
    r.body.destroy();
  }
}

export interface ModuleLocation {
  location: string;
  source: Source;
  servedBy: string;
}

/** Where terraform should get a module version, for any kind; archives are served (and cached) by this repo. */
export async function moduleLocation(svc: Services, repo: RepoDef, m: ModuleAddr, version: string, base: string): Promise<ModuleLocation> {
  checkVersion(version);
  return byLeafKind<Promise<ModuleLocation>>(await leafFor(svc, repo, m, version), {
    async local(leaf) {
      for (const ext of ['tar.gz', 'zip'] as const) {
        if (await svc.meta.files.get(leaf.name, archivePath(m, version, ext))) return { location: `${base}/${archivePath(m, version, ext)}`, source: 'local', servedBy: leaf.name };
      }
      throw new AppError('NOT_FOUND', `module ${m.namespace}/${m.name}/${m.system} ${version} not found in ${leaf.name}`);
    },
    async remote(leaf) {
      const location = await upstreamLocation(svc, leaf, m, version);
      const archive = archiveOf(location);
      return { location: archive ? `${base}/${archivePath(m, version, archive.ext)}${archive.subdir}` : location, source: 'remote', servedBy: leaf.name };
    },
  });
}

/** A module archive through any repo; a remote one is fetched from where the upstream says, once. */
export async function moduleArchive(svc: Services, repo: RepoDef, m: ModuleAddr, version: string, ext: ArchiveExt): Promise<Served> {
  checkVersion(version);
  const leaf = await leafFor(svc, repo, m, version);
  return resolveFile(svc, leaf, {
    path: archivePath(m, version, ext), rejectHtml: true, contentType: typeOf(ext),
    locate: async () => {
      const a = archiveOf(await upstreamLocation(svc, leaf, m, version));
      return a && a.ext === ext ? a.url : null;
    },
  });
}

/**
 * Stores an uploaded module archive: streamed in, then read back to check it unpacks (every
 * member inside the module directory), then the row. One archive per version, either form.
 */
export async function saveModule(svc: Services, repo: RepoDef, m: ModuleAddr, version: string, ext: ArchiveExt, src: Readable): Promise<Record<string, unknown>> {
  checkVersion(version, 'BAD_REQUEST');
  for (const e of ['tar.gz', 'zip'] as const) {
    if (await svc.meta.files.get(repo.name, archivePath(m, version, e))) {
      throw new AppError('CONFLICT', `module ${m.namespace}/${m.name}/${m.system} ${version} already exists in ${repo.name} and cannot be overwritten`);
    }
  }
  const w = await ingestStream(svc, src, { maxSize: svc.config.uploads.max_size || undefined });
  const what = 'module archive';
  if (ext === 'zip') await zipFacts(svc, w.digest, w.size, what);
  else {
    let bad: string | undefined;
    await readTgzEntries(await svc.blob.read(w.digest), (name) => {
      if (!bad && !isContainedPath(name)) bad = name;
      return false;
    }, { what });
    if (bad !== undefined) throw new AppError('BAD_REQUEST', `${what} has a member outside the module directory: ${JSON.stringify(bad)}`);
  }
  const row: ModuleRow = { kind: 'module', version, ext };
  await recordLocalFile(svc, repo, archivePath(m, version, ext), w.digest, w.size, { contentType: typeOf(ext), meta: { ...row }, immutable: true });
  return { namespace: m.namespace, name: m.name, system: m.system, version, sha256: w.digest.slice(7), size: w.size };
}
