import { createHash } from 'node:crypto';
import { AppError } from './errors.js';

export type Digest = `sha256:${string}`;

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function isDigest(s: unknown): s is Digest {
  return typeof s === 'string' && DIGEST_RE.test(s);
}

/** Validates a digest where it enters the system. */
export function parseDigest(s: string | undefined | null, code: 'DIGEST_INVALID' | 'BAD_REQUEST' = 'DIGEST_INVALID'): Digest {
  if (!isDigest(s)) throw new AppError(code, `invalid digest: ${String(s).slice(0, 100)}`);
  return s;
}

export function digestFromHex(hex: string): Digest {
  return parseDigest(`sha256:${hex.toLowerCase()}`);
}

export function hexOf(d: Digest): string {
  return d.slice(7);
}

export function sha256(buf: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(buf).digest('hex')}`;
}
