import { decodePath } from './decode.js';
import { AppError } from './errors.js';

/**
 * Normalises a repo-relative path taken from a URL. Anything that could escape
 * the repo is refused: `..` and `.` segments (plain or percent-encoded, even
 * double-encoded), absolute paths, backslashes, NUL and control characters.
 */
export function safeRepoPath(raw: string): string {
  let decoded = raw;
  // Decode repeatedly so %252e%252e cannot sneak a `..` past one decode.
  for (let i = 0; i < 3; i++) {
    const next = decodePath(decoded);
    if (next === decoded) break;
    decoded = next;
  }
  if (/[\\\u0000-\u001f\u007f]/.test(decoded)) throw new AppError('INVALID_PATH', 'path contains a backslash or control character');
  if (decoded.startsWith('/')) throw new AppError('INVALID_PATH', 'absolute paths are not allowed');
  const segments = decoded.split('/');
  if (segments.some((s) => s === '..' || s === '.')) throw new AppError('INVALID_PATH', 'path escapes the repository');
  const clean = segments.filter((s) => s !== '');
  if (clean.length === 0) throw new AppError('INVALID_PATH', 'empty path');
  return clean.join('/');
}
