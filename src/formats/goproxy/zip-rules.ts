import { posix } from 'node:path';

/** What the module zip rules need to know of one zip entry. */
export interface ZipEntryFacts {
  name: string;
  /** Uncompressed size. */
  size: number;
  /** Unix mode from the external attributes (0 when the zip carries none). */
  mode: number;
}

/** golang.org/x/mod/zip limits. */
export const MAX_ZIP_BYTES = 500 << 20;
export const MAX_GO_MOD_BYTES = 16 << 20;

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
// module.CheckFilePath: characters Windows or shells cannot take in file names.
const BAD_FILE_CHARS = /["'*:;<>?\\`|\u0000-\u001f\u007f]/;
const RESERVED = /^(CON|PRN|AUX|NUL|COM[1-9]|LPT[1-9])(\..*)?$/i;

function filePathError(name: string): string | null {
  if (name.split('/').includes('..')) return 'escapes the module directory (..)';
  if (name === '' || name.startsWith('/') || posix.normalize(name) !== name) return 'not a clean relative path';
  for (const e of name.split('/')) {
    if (e === '' || e === '.') return 'has an empty or "." element';
    if (BAD_FILE_CHARS.test(e)) return 'has a character not allowed in module file names';
    if (e.endsWith('.') || RESERVED.test(e)) return 'has an element Windows cannot hold';
  }
  return null;
}

/**
 * The module zip rules (golang.org/x/mod/zip CheckZip): every path under `module@version/`,
 * clean and without `..`, regular files only (no symlinks or devices), no two names that differ
 * only in case, sizes within go's limits. Returns the problems found; `goMod` is the root go.mod entry.
 */
export function checkEntries(entries: ZipEntryFacts[], modulePath: string, version: string): { errors: string[]; goMod?: ZipEntryFacts } {
  const prefix = `${modulePath}@${version}/`;
  const errors: string[] = [];
  const folded = new Map<string, string>();
  let total = 0;
  let goMod: ZipEntryFacts | undefined;
  for (const e of entries) {
    if (errors.length >= 10) break;
    if (!e.name.startsWith(prefix)) {
      errors.push(`${e.name}: path does not have prefix "${prefix}"`);
      continue;
    }
    let rel = e.name.slice(prefix.length);
    if (rel === '') continue;
    const type = e.mode & S_IFMT;
    const isDir = rel.endsWith('/') || type === S_IFDIR;
    if (isDir) rel = rel.replace(/\/$/, '');
    const bad = filePathError(rel);
    if (bad) {
      errors.push(`${e.name}: ${bad}`);
      continue;
    }
    if (!isDir && type !== 0 && type !== S_IFREG) {
      errors.push(`${e.name}: not a regular file (symlinks and devices are not allowed)`);
      continue;
    }
    const key = (isDir ? `${rel}/` : rel).toLowerCase();
    const other = folded.get(key);
    if (other !== undefined) {
      errors.push(other === e.name ? `${e.name}: listed twice` : `${e.name}: case-insensitive file name collision with ${other}`);
      continue;
    }
    folded.set(key, e.name);
    if (isDir) continue;
    total += e.size;
    if (rel === 'go.mod') {
      goMod = e;
      if (e.size > MAX_GO_MOD_BYTES) errors.push(`go.mod is larger than ${MAX_GO_MOD_BYTES} bytes`);
    }
  }
  if (total > MAX_ZIP_BYTES) errors.push(`total uncompressed size is larger than ${MAX_ZIP_BYTES} bytes`);
  return { errors, goMod };
}

/** The module path a go.mod declares (its `module` directive), or null. */
export function declaredModule(goMod: string): string | null {
  const m = /^\s*module\s+(?:"([^"]+)"|`([^`]+)`|([^\s/]\S*?))\s*(?:\/\/.*)?$/m.exec(goMod);
  return m ? (m[1] ?? m[2] ?? m[3]) : null;
}
