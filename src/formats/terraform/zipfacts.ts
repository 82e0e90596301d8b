import { collect } from '../../lib/streams.js';
import { AppError } from '../../lib/errors.js';
import type { Digest } from '../../lib/digest.js';
import type { Services } from '../../repos/services.js';

export interface ZipFacts {
  /** Go's dirhash of the contents (`h1:…`), as terraform records it; undefined when not computed. */
  h1?: string;
}

/** Checks that a stored blob is a zip archive (bounded reads) and what terraform's hashes need of it. */
export async function zipFacts(svc: Services, digest: Digest, size: number, what: string): Promise<ZipFacts> {
  if (size < 22) throw new AppError('BAD_REQUEST', `${what} is not a zip archive`);
  const head = await collect(await svc.blob.read(digest, { start: 0, end: 3 }), { max: 4 });
  if (head.toString('latin1') !== 'PK\u0003\u0004' && head.toString('latin1') !== 'PK\u0005\u0006') throw new AppError('BAD_REQUEST', `${what} is not a zip archive`);
  return {};
}

/** `h1:` of a zip a repo already stores at `path` with this sha256 (a remote's cached copy); undefined otherwise. */
export async function cachedH1(svc: Services, repo: string, path: string, shasum: string): Promise<string | undefined> {
  const rec = await svc.meta.files.get(repo, path);
  if (!rec || rec.digest !== `sha256:${shasum}`) return undefined;
  return (await zipFacts(svc, rec.digest, rec.size, 'cached provider package').catch(() => ({ h1: undefined }))).h1;
}
