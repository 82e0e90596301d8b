import { AppError } from '../../lib/errors.js';
import { httpUrl, resolveListed, type ListedFile } from '../../repos/listed.js';
import type { DocSource } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import type { Served } from '../../repos/types.js';
import type { FileRec, RepoDef } from '../../storage/meta/types.js';
import {
  mergeProjects, mergeRoots, parseProjectPage, parseRootPage, UPSTREAM_ACCEPT, type ProjectDoc, type PyFile, type RootDoc,
} from './index-doc.js';
import { normalizeName } from './names.js';

/** Storage layout inside a repo: files under `packages/<project>/`, cached upstream pages under `simple/`. */
export const packagePath = (project: string, filename: string) => `packages/${project}/${filename}`;
export const METADATA_SUFFIX = '.metadata';

/** A remote repo's simple index URL: the upstream itself if it already ends in /simple/, else upstream + simple/. */
export function simpleBase(svc: Services, repo: RepoDef): string {
  const u = new URL(svc.repos.upstreamSettings(repo).upstream);
  if (!u.pathname.endsWith('/')) u.pathname += '/';
  if (!/\/simple\/$/.test(u.pathname)) u.pathname += 'simple/';
  return u.toString();
}

/** Facts a local file row carries in `meta` (set at upload). */
export interface LocalFileMeta {
  pypi: 'file' | 'metadata';
  name?: string;
  version?: string;
  requiresPython?: string;
  metadataSha256?: string;
}

function fromRow(rec: FileRec): PyFile | null {
  const m = rec.meta as LocalFileMeta | undefined;
  if (m?.pypi !== 'file') return null;
  const filename = rec.path.slice(rec.path.lastIndexOf('/') + 1);
  return {
    filename,
    hashes: { sha256: rec.digest.slice(7) },
    requiresPython: m.requiresPython || undefined,
    metadata: m.metadataSha256 ? { sha256: m.metadataSha256 } : undefined,
    size: rec.size,
    uploadTime: new Date(rec.fetchedAt).toISOString(),
  };
}

/** The simple page of one project, for every kind. */
export function projectSource(svc: Services, project: string): DocSource<ProjectDoc> {
  return {
    ref: {
      path: `simple/${project}`,
      locate: (r) => `${simpleBase(svc, r)}${project}/`,
      accept: UPSTREAM_ACCEPT,
      mutable: true,
      rejectHtml: false,
    },
    packageName: project,
    cacheAs: 'pypi-project',
    async local(repo) {
      const files: PyFile[] = [];
      for await (const rec of svc.meta.files.list(repo.name, `packages/${project}/`)) {
        const f = fromRow(rec);
        if (f) files.push(f);
      }
      return files.length ? { name: project, files } : null;
    },
    parseUpstream(repo, body) {
      return parseProjectPage(body, `${simpleBase(svc, repo)}${project}/`, project);
    },
    merge(_repo, parts) {
      return mergeProjects(project, parts);
    },
  };
}

/** The root listing `/simple/`, for every kind. */
export function rootSource(svc: Services): DocSource<RootDoc> {
  return {
    ref: { path: 'simple/index', locate: (r) => simpleBase(svc, r), accept: UPSTREAM_ACCEPT, mutable: true, rejectHtml: false },
    cacheAs: 'pypi-root',
    async local(repo) {
      const names = new Map<string, string>();
      for await (const rec of svc.meta.files.list(repo.name, 'packages/')) {
        const m = rec.meta as LocalFileMeta | undefined;
        if (m?.pypi !== 'file') continue;
        const project = rec.path.split('/')[1];
        if (!names.has(project)) names.set(project, m.name ?? project);
      }
      return { projects: [...names.values()] };
    },
    parseUpstream(_repo, body) {
      return parseRootPage(body);
    },
    entries: {
      names: (doc) => doc.projects.map(normalizeName),
      without: (doc, names) => ({ projects: doc.projects.filter((n) => !names.has(normalizeName(n))) }),
    },
    merge(_repo, parts) {
      return mergeRoots(parts);
    },
  };
}

/**
 * A distribution file (or its `.metadata`) as its project page lists it (repos/listed.ts). Remote:
 * cached forever once verified against the sha256 the upstream page lists, fetched from the URL
 * that page gives. Virtual: from the member whose entry the merged page lists.
 */
export function pyFile(svc: Services, project: string, filename: string, metadata: boolean): ListedFile<ProjectDoc, PyFile> {
  const what = filename + (metadata ? METADATA_SUFFIX : '');
  return {
    doc: projectSource(svc, project),
    path: packagePath(project, what),
    what,
    cachedFirst: true,
    find: (doc) => doc.files.find((f) => f.filename === filename && (!metadata || f.metadata)),
    origin: (_doc, entry) => entry.from,
    upstream(_repo, entry) {
      const url = httpUrl(entry.url, filename);
      const hex = metadata ? entry.metadata?.sha256 : entry.hashes.sha256;
      if (hex !== undefined && !/^[a-f0-9]{64}$/.test(hex)) throw new AppError('UPSTREAM_FAILED', `upstream lists a malformed sha256 for ${filename}`);
      return {
        locate: () => url + (metadata ? METADATA_SUFFIX : ''),
        expect: hex ? { digest: `sha256:${hex}`, size: metadata ? undefined : entry.size } : undefined,
      };
    },
  };
}

/** A distribution file (or its `.metadata`) through any kind of repo. */
export function resolvePyFile(svc: Services, repo: RepoDef, project: string, filename: string, metadata: boolean): Promise<Served> {
  return resolveListed(svc, repo, pyFile(svc, project, filename, metadata));
}
