import { AppError } from '../../lib/errors.js';

/** PEP 503 normalised project name: `Foo_Bar.baz` -> `foo-bar-baz`. */
export function normalizeName(name: string): string {
  return name.replace(/[-_.]+/g, '-').toLowerCase();
}

/** A valid project name (PEP 508 / core metadata `Name`). */
export function isValidName(name: string): boolean {
  return /^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$/i.test(name);
}

const VERSION_RE =
  /^\s*v?(?:(\d+)!)?(\d+(?:\.\d+)*)(?:[-_.]?(alpha|beta|preview|pre|a|b|c|rc)[-_.]?(\d+)?)?(?:-(\d+)|[-_.]?(post|rev|r)[-_.]?(\d+)?)?(?:[-_.]?(dev)[-_.]?(\d+)?)?(?:\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?\s*$/i;

/**
 * PEP 440 canonical form for comparing versions (as packaging's
 * canonicalize_version: `1.0.0` == `1`, `1.0-RC1` == `1rc1`). Strings that are
 * not PEP 440 versions compare as their lowercased, trimmed selves.
 */
export function canonicalVersion(v: string): string {
  const m = VERSION_RE.exec(v);
  if (!m) return v.trim().toLowerCase();
  const [, epoch, release, preL, preN, postImplicit, postL, postN, devL, devN, local] = m;
  let out = epoch && Number(epoch) !== 0 ? `${Number(epoch)}!` : '';
  const parts = release.split('.').map((p) => String(Number(p)));
  while (parts.length > 1 && parts[parts.length - 1] === '0') parts.pop();
  out += parts.join('.');
  if (preL) {
    const l = preL.toLowerCase();
    const tag = l === 'alpha' ? 'a' : l === 'beta' ? 'b' : l === 'c' || l === 'pre' || l === 'preview' ? 'rc' : l;
    out += `${tag}${Number(preN ?? 0)}`;
  }
  if (postImplicit !== undefined) out += `.post${Number(postImplicit)}`;
  else if (postL) out += `.post${Number(postN ?? 0)}`;
  if (devL) out += `.dev${Number(devN ?? 0)}`;
  if (local) out += `+${local.toLowerCase().replace(/[-_]/g, '.')}`;
  return out;
}

export interface DistFile {
  kind: 'wheel' | 'sdist';
  /** Name and version as written in the filename (sdists: the split that matched, if any). */
  name: string;
  version: string;
}

const WHEEL_RE = /^([^-]+)-([^-]+)(?:-(\d[^-]*))?-([^-]+)-([^-]+)-([^-]+)\.whl$/;
const SDIST_EXT = /\.(tar\.gz|zip)$/;

/** Refuses a filename that is not a plain file name of a wheel or sdist. */
export function checkFilename(filename: string): void {
  if (!filename || filename.length > 255 || /[/\\\u0000-\u001f\u007f]/.test(filename) || filename.startsWith('.')) {
    throw new AppError('BAD_REQUEST', `invalid filename: ${JSON.stringify(filename.slice(0, 100))}`);
  }
}

/**
 * Name and version from a distribution filename. Wheels split unambiguously;
 * an sdist stem (`foo-bar-1.0`) is split where the form's name and version
 * fit, else at the last `-` followed by a digit.
 */
export function parseDistFilename(filename: string, hint?: { name?: string; version?: string }): DistFile {
  checkFilename(filename);
  const w = WHEEL_RE.exec(filename);
  if (w) return { kind: 'wheel', name: w[1], version: w[2] };
  if (filename.endsWith('.whl')) throw new AppError('BAD_REQUEST', `invalid wheel filename: ${filename}`);
  const ext = SDIST_EXT.exec(filename);
  if (!ext) throw new AppError('BAD_REQUEST', `unsupported file type: ${filename} (only .whl, .tar.gz and .zip are accepted)`);
  const stem = filename.slice(0, -ext[0].length);
  const splits: [string, string][] = [];
  for (let i = stem.indexOf('-'); i > 0; i = stem.indexOf('-', i + 1)) splits.push([stem.slice(0, i), stem.slice(i + 1)]);
  if (hint?.name && hint.version) {
    const hit = splits.find(([n, v]) => normalizeName(n) === normalizeName(hint.name!) && canonicalVersion(v) === canonicalVersion(hint.version!));
    if (hit) return { kind: 'sdist', name: hit[0], version: hit[1] };
  }
  const guess = [...splits].reverse().find(([, v]) => /^v?\d/i.test(v));
  if (!guess) throw new AppError('BAD_REQUEST', `cannot read a name and version from ${filename}`);
  return { kind: 'sdist', name: guess[0], version: guess[1] };
}
