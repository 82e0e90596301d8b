import { isContainedPath } from '../../lib/archive-paths.js';
import type { Digest } from '../../lib/digest.js';
import { hashZip } from '../../lib/dirhash.js';
import { AppError } from '../../lib/errors.js';
import { openZip } from '../../lib/zip.js';
import type { Services } from '../../repos/services.js';

const LIMITS = { maxEntries: 10_000 };
/** Bytes of one entry hashed for `h1:` (provider binaries run to a few hundred MiB). */
const MAX_ENTRY = 2 * 1024 * 1024 * 1024;

export interface ZipFacts {
  /** Go's dirhash of the contents (`h1:…`), as terraform records it in lock files and mirrors. */
  h1?: string;
}

/**
 * Checks that a stored blob is a zip whose every member unpacks inside its directory (ranged
 * reads, bounded), and, with `h1`, hashes its entries (streamed one at a time) as terraform does.
 */
export async function zipFacts(svc: Services, digest: Digest, size: number, what: string, o: { h1?: boolean } = {}): Promise<ZipFacts> {
  const zip = await openZip(svc.blob, digest, size, what, LIMITS);
  if (zip.entries.length === 0) throw new AppError('BAD_REQUEST', `${what} is empty`);
  for (const e of zip.entries) {
    if (!isContainedPath(e.name)) throw new AppError('BAD_REQUEST', `${what} has a member outside its directory: ${JSON.stringify(e.name)}`);
    if (e.isSymlink) throw new AppError('BAD_REQUEST', `${what} has a symlink: ${JSON.stringify(e.name)}`);
  }
  return o.h1 ? { h1: await hashZip(zip, MAX_ENTRY) } : {};
}

/** Computed `h1:` hashes by zip digest (a cached zip never changes), per server and bounded. */
export const H1_CACHE = { name: 'terraform.h1', maxBytes: 2 * 1024 * 1024, maxEntries: 10_000 };
const h1s = (svc: Services) => svc.caches.lru<string>(H1_CACHE.name, H1_CACHE.maxBytes, H1_CACHE.maxEntries);

/** `h1:` of a zip a repo already stores at `path` with this sha256 (a remote's cached copy); undefined otherwise. */
export async function cachedH1(svc: Services, repo: string, path: string, shasum: string): Promise<string | undefined> {
  const rec = await svc.meta.files.get(repo, path);
  if (!rec || rec.digest !== `sha256:${shasum}`) return undefined;
  const hit = h1s(svc).get(rec.digest);
  if (hit) return hit;
  try {
    const { h1 } = await zipFacts(svc, rec.digest, rec.size, 'cached provider package', { h1: true });
    if (h1) h1s(svc).set(rec.digest, h1, rec.digest.length + h1.length);
    return h1;
  } catch (err) {
    svc.log.warn({ repo, path, err: (err as Error).message }, 'h1 not computable');
    return undefined;
  }
}
