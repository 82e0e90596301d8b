import { decodePath, tryDecode } from '../../lib/decode.js';
import { AppError } from '../../lib/errors.js';

/**
 * npm package names: `name` or `@scope/name`, URL-safe characters only
 * (validate-npm-package-name, plus the upper case that old packages carry).
 * Nothing that could act as a path segment (`.`, `..`, leading dots).
 */
const PART = /^[A-Za-z0-9~-][A-Za-z0-9._~-]*$/;
const FILE = /^[A-Za-z0-9~-][A-Za-z0-9._~+-]*$/;

export function isPackageName(name: string): boolean {
  if (name.length === 0 || name.length > 214) return false;
  if (name.startsWith('@')) {
    const slash = name.indexOf('/');
    if (slash < 2) return false;
    return PART.test(name.slice(1, slash)) && PART.test(name.slice(slash + 1));
  }
  return PART.test(name);
}

export function assertPackageName(name: string): string {
  if (!isPackageName(name)) throw new AppError('NAME_INVALID', `invalid package name: ${JSON.stringify(name.slice(0, 220))}`);
  return name;
}

/** A tarball file name (last path segment); never one of our own `_packument*` rows. */
export function assertTarballFile(file: string): string {
  if (!FILE.test(file) || file.length > 300) throw new AppError('INVALID_PATH', `invalid tarball name: ${JSON.stringify(file.slice(0, 300))}`);
  return file;
}

/** `@scope/name` -> `@scope%2fname`, the form npm puts in URLs. */
export function escapeName(name: string): string {
  return name.startsWith('@') ? `@${encodeURIComponent(name.slice(1))}` : encodeURIComponent(name);
}

/** `@scope/name` -> `name` (tarball files are named after the unscoped part). */
export function unscoped(name: string): string {
  return name.startsWith('@') ? name.slice(name.indexOf('/') + 1) : name;
}

/** Where each package's things live inside a repo (storage keys). */
export const paths = {
  /** Local: the package document (versions, dist-tags, time); remote: the cached full upstream packument. */
  doc: (name: string) => `${name}/-/_packument.json`,
  tarball: (name: string, file: string) => `${name}/-/${file}`,
  prefix: (name: string) => `${name}/-/`,
};

/** The last path segment of a tarball URL (decoded), or null. */
export function tarballFileOf(url: unknown): string | null {
  if (typeof url !== 'string' || url.length === 0) return null;
  let path = url;
  try {
    path = new URL(url).pathname;
  } catch {
    // a relative reference: the path itself
  }
  return tryDecode(path.split('/').pop() ?? '') || null;
}

/** What a request under /REPO/ asks for. */
export type NpmRoute =
  | { kind: 'ping' }
  | { kind: 'dist-tags'; name: string; tag?: string }
  | { kind: 'package'; name: string; rev?: string }
  | { kind: 'version'; name: string; spec: string }
  | { kind: 'tarball'; name: string; file: string; rev?: string }
  /** Answered by the upstream as it is: audit (POST) and search (GET). */
  | { kind: 'forward'; method: 'GET' | 'POST' };

/** Registry endpoints that only an upstream can answer: method by path under /REPO/. */
const FORWARDED: Record<string, 'GET' | 'POST'> = {
  '-/npm/v1/security/advisories/bulk': 'POST',
  '-/npm/v1/security/audits/quick': 'POST',
  '-/npm/v1/security/audits': 'POST',
  '-/v1/search': 'GET',
};

/** The path after /REPO/ decoded, trailing slashes dropped: `@scope%2fname` and `@scope/name` are the same package. */
function decodeSegments(rest: string): string[] {
  const decoded = decodePath(rest);
  if (/[\\\u0000-\u001f\u007f]/.test(decoded)) throw new AppError('INVALID_PATH', 'path contains a backslash or control character');
  const seg = decoded.split('/');
  while (seg.length > 0 && seg[seg.length - 1] === '') seg.pop();
  return seg;
}

/**
 * The path the npm route table matches (format `decodePath`): decoded, its names and tarball
 * files validated (NAME_INVALID, INVALID_PATH); '' (no route) for a path that is no endpoint.
 */
export function npmPath(rest: string): string {
  return parseRoute(rest) ? decodeSegments(rest).join('/') : '';
}

/** Parses the path after /REPO/ (still percent-encoded) into the endpoint it names. */
export function parseRoute(rest: string): NpmRoute | null {
  const seg = decodeSegments(rest);
  if (seg.length === 0) return null;
  if (seg[0] === '-') {
    if (seg.length === 2 && seg[1] === 'ping') return { kind: 'ping' };
    const method = FORWARDED[seg.join('/')];
    if (method) return { kind: 'forward', method };
    if (seg[1] === 'package' && seg.length >= 4) {
      const scoped = seg[2].startsWith('@');
      const name = scoped ? `${seg[2]}/${seg[3]}` : seg[2];
      const tail = seg.slice(scoped ? 4 : 3);
      if (tail[0] !== 'dist-tags' || tail.length > 2) return null;
      return { kind: 'dist-tags', name: assertPackageName(name), tag: tail[1] };
    }
    return null;
  }
  const scoped = seg[0].startsWith('@');
  if (scoped && seg.length < 2) return null;
  const name = assertPackageName(scoped ? `${seg[0]}/${seg[1]}` : seg[0]);
  const tail = seg.slice(scoped ? 2 : 1);
  if (tail.length === 0) return { kind: 'package', name };
  if (tail[0] === '-rev' && tail.length === 2) return { kind: 'package', name, rev: tail[1] };
  if (tail[0] === '-' && tail.length === 2) return { kind: 'tarball', name, file: assertTarballFile(tail[1]) };
  if (tail[0] === '-' && tail.length === 4 && tail[2] === '-rev') return { kind: 'tarball', name, file: assertTarballFile(tail[1]), rev: tail[3] };
  if (tail.length === 1 && tail[0] !== '-') return { kind: 'version', name, spec: tail[0] };
  return null;
}
