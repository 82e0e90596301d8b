import semver from 'semver';
import { AppError } from '../../lib/errors.js';
import { parseYaml, yamlValue } from '../../lib/yaml.js';
import type { DerivedDoc } from '../../repos/derived.js';
import type { DocSource } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import { mergeEntries } from '../../repos/virtual.js';
import type { RepoDef } from '../../storage/meta/types.js';
import { chartFileName, chartMeta, type ChartMeta } from './chart.js';

/** One chart version as an index lists it, with where it came from. */
export interface Entry {
  meta: ChartMeta;
  /** File name under the repo: `<name>-<version>.tgz`. */
  file: string;
  /** sha256 hex of the package. */
  digest?: string;
  created?: string;
  /** Remote: the URL the upstream lists (absolute, or relative to the upstream's index). */
  upstreamUrl?: string;
  /** Virtual: the member that listed it, which serves the package. */
  member?: string;
}

/** Parsed index: chart name -> versions, newest first. */
export type HelmIndex = Map<string, Entry[]>;

export const INDEX_PATH = 'index.yaml';
export const INDEX_TYPE = 'application/x-yaml';

function byVersionDesc(a: Entry, b: Entry): number {
  return semver.rcompare(a.meta.version, b.meta.version);
}

function add(index: HelmIndex, e: Entry): void {
  const list = index.get(e.meta.name);
  if (list) list.push(e);
  else index.set(e.meta.name, [e]);
}

function sorted(index: HelmIndex): HelmIndex {
  const out: HelmIndex = new Map();
  for (const name of [...index.keys()].sort()) out.set(name, index.get(name)!.sort(byVersionDesc));
  return out;
}

/** A local repo's charts, from the rows written at upload. */
export async function localIndex(svc: Services, repo: RepoDef): Promise<HelmIndex> {
  const index: HelmIndex = new Map();
  for await (const f of svc.meta.files.list(repo.name)) {
    const chart = f.meta?.kind === 'chart' ? (f.meta.chart as ChartMeta) : undefined;
    if (!chart) continue;
    add(index, { meta: chart, file: f.path, digest: f.digest.slice(7), created: new Date(f.fetchedAt).toISOString() });
  }
  return sorted(index);
}

/** An upstream's index.yaml; entries that helm itself would reject are dropped, not fatal. */
export function parseUpstreamIndex(body: Buffer, what: string): HelmIndex {
  const doc = parseYaml(body.toString('utf8'), `${what}: index.yaml`, { code: 'UPSTREAM_FAILED' });
  const entries = (doc as { entries?: unknown })?.entries;
  if (!entries || typeof entries !== 'object') throw new AppError('UPSTREAM_FAILED', `${what}: index.yaml has no entries`);
  const index: HelmIndex = new Map();
  for (const versions of Object.values(entries as Record<string, unknown>)) {
    if (!Array.isArray(versions)) continue;
    for (const v of versions as Record<string, unknown>[]) {
      let meta: ChartMeta;
      try {
        meta = chartMeta({ apiVersion: 'v1', ...v }, what);
      } catch {
        continue;
      }
      const urls = Array.isArray(v.urls) ? v.urls.filter((u): u is string => typeof u === 'string') : [];
      if (urls.length === 0) continue;
      add(index, {
        meta, file: chartFileName(meta.name, meta.version), upstreamUrl: urls[0],
        digest: typeof v.digest === 'string' && /^[a-f0-9]{64}$/.test(v.digest) ? v.digest : undefined,
        created: typeof v.created === 'string' ? v.created : undefined,
      });
    }
  }
  return sorted(index);
}

/**
 * Member indexes in member order; the first member listing a name+version wins. A chart name that
 * a local repo publishes anywhere below the virtual repo has no remote versions left by now
 * (DocSource.entries in indexSource).
 */
export function mergeIndexes(_repo: RepoDef, parts: { member: RepoDef; doc: HelmIndex }[]): HelmIndex {
  const merged: HelmIndex = new Map();
  const lists = parts.map((p) => ({ member: p.member, entries: [...p.doc.values()].flat() }));
  for (const e of mergeEntries(lists, (x) => x.meta.name, (x) => x.meta.version)) add(merged, e);
  return sorted(merged);
}

export function findEntry(index: HelmIndex, file: string): Entry | undefined {
  for (const list of index.values()) for (const e of list) if (e.file === file) return e;
  return undefined;
}

/**
 * index.yaml as helm reads it. `urlOf` writes each package's URL (relative for a local repo's
 * stored index, absolute to this server for rendered ones); `generated` is the newest entry's
 * time, so the same charts always render the same bytes.
 */
export function renderIndex(index: HelmIndex, urlOf: (e: Entry) => string): string {
  const out = ['apiVersion: v1', 'entries:'];
  let generated = '1970-01-01T00:00:00.000Z';
  for (const [name, list] of index) {
    out.push(`  ${yamlValue(name)}:`);
    for (const e of list) {
      if (e.created && e.created > generated) generated = e.created;
      const fields: [string, unknown][] = [...Object.entries(e.meta), ['created', e.created], ['digest', e.digest], ['urls', [urlOf(e)]]];
      let first = true;
      for (const [k, v] of fields) {
        if (v === undefined) continue;
        out.push(`${first ? '  - ' : '    '}${k}: ${yamlValue(v)}`);
        first = false;
      }
    }
  }
  if (index.size === 0) out[1] = 'entries: {}';
  out.push(`generated: ${yamlValue(generated)}`, '');
  return out.join('\n');
}

/**
 * `serverInfo.contextPath` tells `helm cm-push` where the repo's ChartMuseum API is (it posts to
 * `<contextPath>/api/charts`): the repo's path under `public_url`, or under the host root. A
 * top-level key after the document's last line is still YAML.
 */
export function withServerInfo(body: string, repoPath: string): string {
  return `${body}serverInfo:\n  contextPath: ${yamlValue(repoPath)}\n`;
}

export function repoPath(svc: Services, repo: RepoDef): string {
  const base = svc.config.public_url ? new URL(svc.config.public_url).pathname.replace(/\/+$/, '') : '';
  return `${base}/${repo.name}`;
}

/** The index a local repo keeps up to date on every write (repos/derived.ts), served as a stored file. */
export const localIndexDoc: DerivedDoc = {
  path: INDEX_PATH,
  contentType: INDEX_TYPE,
  async render(svc, repo) {
    return Buffer.from(withServerInfo(renderIndex(await localIndex(svc, repo), (e) => e.file), repoPath(svc, repo)));
  },
};

/** How each kind builds a repo's index (see repos/resolve.ts). */
export function indexSource(svc: Services): DocSource<HelmIndex> {
  return {
    ref: { path: INDEX_PATH, mutable: true, contentType: INDEX_TYPE },
    cacheAs: 'helm-index',
    maxBytes: Math.max(svc.config.limits.metadata_body, 64 * 1024 * 1024),
    local: (repo) => localIndex(svc, repo),
    parseUpstream: (repo, body) => parseUpstreamIndex(body, `upstream of ${repo.name}`),
    entries: { names: (index) => index.keys(), without: (index, names) => new Map([...index].filter(([n]) => !names.has(n))) },
    merge: mergeIndexes,
  };
}
