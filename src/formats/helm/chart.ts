import type { Readable } from 'node:stream';
import semver from 'semver';
import { AppError } from '../../lib/errors.js';
import { readTgzEntries } from '../../lib/tgz.js';
import { parseYaml } from '../../lib/yaml.js';

/** Chart.yaml fields an index entry carries (what helm reads from index.yaml), in helm's order. */
export const ENTRY_FIELDS = [
  'annotations', 'apiVersion', 'appVersion', 'condition', 'dependencies', 'deprecated', 'description', 'home', 'icon',
  'keywords', 'kubeVersion', 'maintainers', 'name', 'sources', 'tags', 'type', 'version',
] as const;

export type ChartMeta = { name: string; version: string; apiVersion: string } & Record<string, unknown>;

// Helm's own rule for chart names.
const NAME_RE = /^[A-Za-z0-9._-]+$/;
const CHART_YAML_CAP = 1024 * 1024;

export function chartFileName(name: string, version: string): string {
  return `${name}-${version}.tgz`;
}

/** A version as helm writes it: SemVer 2, no `v` prefix. */
export function isChartVersion(v: unknown): v is string {
  return typeof v === 'string' && /^[0-9]/.test(v) && semver.valid(v) !== null;
}

export function isChartName(n: unknown): n is string {
  return typeof n === 'string' && n.length <= 250 && NAME_RE.test(n) && n !== '.' && n !== '..';
}

/** Keeps the entry fields of a Chart.yaml, after checking the ones helm relies on. */
export function chartMeta(doc: unknown, what: string): ChartMeta {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new AppError('BAD_REQUEST', `${what}: Chart.yaml is not a mapping`);
  const d = doc as Record<string, unknown>;
  if (d.apiVersion !== 'v1' && d.apiVersion !== 'v2') throw new AppError('BAD_REQUEST', `${what}: apiVersion must be v1 or v2`);
  if (!isChartName(d.name)) throw new AppError('BAD_REQUEST', `${what}: invalid chart name ${JSON.stringify(d.name)}`);
  if (!isChartVersion(d.version)) throw new AppError('BAD_REQUEST', `${what}: version ${JSON.stringify(d.version)} is not SemVer 2`);
  if (d.type !== undefined && d.type !== 'application' && d.type !== 'library') throw new AppError('BAD_REQUEST', `${what}: type must be application or library`);
  if (d.dependencies !== undefined && !Array.isArray(d.dependencies)) throw new AppError('BAD_REQUEST', `${what}: dependencies must be a list`);
  const meta: Record<string, unknown> = {};
  for (const k of ENTRY_FIELDS) if (d[k] !== undefined && d[k] !== null) meta[k] = d[k];
  if (typeof meta.appVersion === 'number') meta.appVersion = String(meta.appVersion);
  return meta as ChartMeta;
}

/** Reads and validates `<chart>/Chart.yaml` from a chart package, streaming and bounded. */
export async function readChartYaml(src: Readable, what: string): Promise<ChartMeta> {
  const isChartYaml = (name: string) => /^[^/]+\/Chart\.yaml$/.test(name);
  const found = await readTgzEntries(src, isChartYaml, { what, limits: { maxEntryBytes: CHART_YAML_CAP }, stopWhen: (f) => f.size > 0 });
  const [entry] = found;
  if (!entry) throw new AppError('BAD_REQUEST', `${what} has no <chart>/Chart.yaml`);
  return chartMeta(parseYaml(entry[1].toString('utf8'), `${what}: Chart.yaml`), what);
}
