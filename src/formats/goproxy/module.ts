import semver from 'semver';
import { AppError } from '../../lib/errors.js';

/**
 * Module paths and versions as the go command and golang.org/x/mod/module see them. Paths in URLs
 * are case-encoded (`!x` for `X`, sent by go as `%21x`); rows are stored under that encoded form, so
 * two paths that differ only in case never share a key.
 */

/** `github.com/!foo/bar` -> `github.com/Foo/bar`; null when the encoding is malformed (an upper-case letter, a stray `!`). */
export function unescapePath(escaped: string): string | null {
  let out = '';
  for (let i = 0; i < escaped.length; i++) {
    const c = escaped[i];
    if (c >= 'A' && c <= 'Z') return null;
    if (c === '!') {
      const n = escaped[i + 1];
      if (!n || n < 'a' || n > 'z') return null;
      out += n.toUpperCase();
      i++;
    } else out += c;
  }
  return out;
}

/** `github.com/Foo/bar` -> `github.com/!foo/bar`. */
export function escapePath(path: string): string {
  return path.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
}

const ELEM_RE = /^[A-Za-z0-9\-._~]+$/;
const FIRST_RE = /^[a-z0-9.-]+$/;
// Windows reserved names, refused as path elements by module.CheckPath.
const RESERVED = /^(CON|PRN|AUX|NUL|COM[1-9]|LPT[1-9])(\..*)?$/i;

/** Why `path` is not a valid module path (module.CheckPath), or null when it is. */
export function modulePathError(path: string): string | null {
  if (path.length === 0 || path.length > 500) return 'module path is empty or too long';
  const elems = path.split('/');
  const first = elems[0];
  if (!FIRST_RE.test(first) || !first.includes('.') || first.startsWith('-') || first.startsWith('.') || first.endsWith('.')) {
    return `malformed module path "${path}": the first element must be a lower-case domain name with a dot`;
  }
  for (const e of elems) {
    if (!ELEM_RE.test(e)) return `malformed module path "${path}": invalid element "${e}"`;
    if (e.startsWith('.') || e.endsWith('.')) return `malformed module path "${path}": element "${e}" starts or ends with a dot`;
    if (RESERVED.test(e)) return `malformed module path "${path}": "${e}" is a reserved file name`;
  }
  if (/\/v[01]$/.test(path) || /\/v0\d/.test(path)) return `malformed module path "${path}": invalid major version suffix`;
  return null;
}

/** The module path of an escaped URL path, checked; 404 for anything go could not have asked for. */
export function parseModulePath(escaped: string): { escaped: string; path: string } {
  const path = unescapePath(escaped);
  const err = path === null ? 'malformed case-encoding' : modulePathError(path);
  if (path === null || err) throw new AppError('NOT_FOUND', `${escaped}: ${err}`);
  return { escaped, path };
}

// Canonical semantic versions as the go command writes them: vMAJOR.MINOR.PATCH[-pre][+incompatible].
const VERSION_RE = /^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+incompatible)?$/;

export function isCanonicalVersion(v: string): boolean {
  if (!VERSION_RE.test(v)) return false;
  // semver also forbids leading zeros in numeric pre-release identifiers.
  return semver.valid(v.slice(1)) !== null;
}

export function majorOf(v: string): number {
  return Number(/^v(\d+)/.exec(v)![1]);
}

/** Sorts go versions ascending by semver precedence (build metadata such as +incompatible ignored). */
export function compareVersions(a: string, b: string): number {
  return semver.compare(a.slice(1), b.slice(1)) || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * The major-version rules between a module path and a version (module.Check): v0/v1 take a path
 * without a /vN suffix; vN (N >= 2) needs the /vN suffix, or `+incompatible` on a path without one;
 * gopkg.in paths carry `.vN` instead. Returns why the pair is invalid, or null.
 */
export function versionPathError(path: string, version: string): string | null {
  if (!isCanonicalVersion(version)) return `version "${version}" is not a canonical semantic version (vMAJOR.MINOR.PATCH)`;
  const major = majorOf(version);
  const incompatible = version.endsWith('+incompatible');
  const gopkg = /^gopkg\.in\/.*\.v(\d+)(-unstable)?$/.exec(path);
  if (gopkg) {
    if (incompatible) return '+incompatible is not allowed on gopkg.in paths';
    return Number(gopkg[1]) === major ? null : `version ${version} does not match gopkg.in path ${path}`;
  }
  const suffix = /\/v(\d+)$/.exec(path);
  if (incompatible) {
    if (suffix) return `+incompatible is not allowed on a path with a major version suffix (${path})`;
    if (major < 2) return `+incompatible is only allowed on major versions 2 and above (${version})`;
    return null;
  }
  if (suffix) return Number(suffix[1]) === major ? null : `version ${version} does not match the major version suffix of ${path}`;
  return major <= 1 ? null : `version ${version} needs the module path to end in /v${major} (or +incompatible)`;
}

/** The newest version go's @latest would choose from a list: the highest release, else the highest pre-release. */
export function latestOf(versions: string[]): string | undefined {
  const sorted = [...versions].sort(compareVersions);
  const releases = sorted.filter((v) => !/^v\d+\.\d+\.\d+-/.test(v));
  return (releases.length ? releases : sorted).at(-1);
}
