import type { Readable } from 'node:stream';
import semver from 'semver';
import { isContainedPath } from '../../lib/archive-paths.js';
import { parseJson } from '../../lib/decode.js';
import { AppError } from '../../lib/errors.js';
import { readTgzEntries } from '../../lib/tgz.js';

/** A module release's metadata.json, as the Forge lists it under `metadata`. */
export type ModuleMetadata = { name: string; version: string; dependencies: Dependency[] } & Record<string, unknown>;
export interface Dependency {
  name: string;
  version_requirement?: string;
}

// The Forge's rules: owner letters and digits; module name a lowercase word.
const FULL_NAME_RE = /^([A-Za-z0-9]+)[-/]([a-z][a-z0-9_]*)$/;
const METADATA_CAP = 1024 * 1024;

/** `owner-name` from `owner-name` or `owner/name`; null when it is not a module name. */
export function normalizeName(raw: unknown): string | null {
  if (typeof raw !== 'string') return null;
  const m = FULL_NAME_RE.exec(raw);
  return m ? `${m[1]}-${m[2]}` : null;
}

export function isModuleVersion(v: unknown): v is string {
  return typeof v === 'string' && /^[0-9]/.test(v) && semver.valid(v) === v;
}

/** `owner-name-version`, the Forge's release slug. */
export function releaseSlug(name: string, version: string): string {
  return `${name}-${version}`;
}

/** `owner-name-version` back to its parts (the name holds exactly one `-`). */
export function parseSlug(slug: string): { name: string; version: string } | null {
  const m = /^([A-Za-z0-9]+-[a-z][a-z0-9_]*)-(.+)$/.exec(slug);
  return m && isModuleVersion(m[2]) ? { name: m[1], version: m[2] } : null;
}

/** Checks the fields puppet relies on (name, SemVer version, dependencies) and normalises the name. */
export function moduleMetadata(doc: unknown, what: string): ModuleMetadata {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new AppError('BAD_REQUEST', `${what}: metadata.json is not an object`);
  const d = doc as Record<string, unknown>;
  const name = normalizeName(d.name);
  if (!name) throw new AppError('BAD_REQUEST', `${what}: name ${JSON.stringify(d.name)} is not owner-name`);
  if (!isModuleVersion(d.version)) throw new AppError('BAD_REQUEST', `${what}: version ${JSON.stringify(d.version)} is not SemVer`);
  const deps = d.dependencies ?? [];
  if (!Array.isArray(deps)) throw new AppError('BAD_REQUEST', `${what}: dependencies must be a list`);
  const dependencies = deps.map((dep: unknown): Dependency => {
    const x = (dep ?? {}) as Record<string, unknown>;
    const depName = normalizeName(x.name);
    if (!depName) throw new AppError('BAD_REQUEST', `${what}: dependency name ${JSON.stringify(x.name)} is not owner-name`);
    const req = x.version_requirement;
    if (req !== undefined && (typeof req !== 'string' || semver.validRange(req) === null)) {
      throw new AppError('BAD_REQUEST', `${what}: dependency ${depName} has an invalid version_requirement ${JSON.stringify(req)}`);
    }
    return x as unknown as Dependency;
  });
  return { ...d, name, version: d.version, dependencies };
}

/**
 * Reads `<dir>/metadata.json` from a module tarball, streaming and bounded, and validates it.
 * Every file entry must stay inside the directory it unpacks into.
 */
export async function readModuleMetadata(src: Readable, what: string): Promise<ModuleMetadata> {
  const want = (name: string) => {
    if (!isContainedPath(name)) throw new AppError('BAD_REQUEST', `${what} has an entry outside its directory: ${JSON.stringify(name)}`);
    return /^[^/]+\/metadata\.json$/.test(name);
  };
  const found = await readTgzEntries(src, want, { what, limits: { maxEntryBytes: METADATA_CAP } });
  const [entry, ...more] = found;
  if (!entry) throw new AppError('BAD_REQUEST', `${what} has no <module>/metadata.json`);
  if (more.length) throw new AppError('BAD_REQUEST', `${what} has more than one top-level metadata.json`);
  return moduleMetadata(parseJson(entry[1], 'BAD_REQUEST', `${what}: metadata.json is not valid JSON`), what);
}
