import { posix } from 'node:path';

/**
 * An archive member name that stays inside the directory it is unpacked
 * into: relative, no `..` past the root, no backslashes, drive letters or NULs
 * (which other platforms' unpackers read as separators or roots).
 */
export function isContainedPath(name: string): boolean {
  if (name === '' || name.startsWith('/') || /[\\\0]/.test(name) || /^[A-Za-z]:/.test(name)) return false;
  const norm = posix.normalize(name);
  return norm !== '..' && !norm.startsWith('../');
}
