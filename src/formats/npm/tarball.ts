import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { isContainedPath } from '../../lib/archive-paths.js';
import { AppError } from '../../lib/errors.js';

/**
 * Walks a published tarball's entries (npm unpacks it on every install):
 * every name, and every link target, must stay inside the package root. The
 * unpacked size is bounded, so a gzip bomb costs at most `maxUnpacked` bytes
 * of reading, never memory.
 */
export async function checkTarball(data: Buffer, maxUnpacked: number, what: string): Promise<void> {
  const bad = (why: string) => new AppError('BAD_REQUEST', `${what}: ${why}`);
  let failure: AppError | undefined;
  let unpacked = 0;
  const gunzip = createGunzip();
  const extract = tar.extract();
  const stop = (stream: { destroy(e: Error): void }, err: AppError) => {
    failure ??= err;
    stream.destroy(err);
  };
  extract.on('entry', (h, stream, next) => {
    stream.on('error', () => {}); // the failure is reported once, below
    const fail = (why: string) => stop(extract, bad(why));
    if (!isContainedPath(h.name)) return fail(`entry ${JSON.stringify(h.name)} is outside the package`);
    if (h.type === 'symlink' && (!h.linkname || h.linkname.startsWith('/') || !isContainedPath(posix.join(posix.dirname(h.name), h.linkname)))) {
      return fail(`symlink ${JSON.stringify(h.name)} points outside the package`);
    }
    if (h.type === 'link' && !isContainedPath(h.linkname ?? '')) return fail(`hard link ${JSON.stringify(h.name)} points outside the package`);
    stream.on('end', next);
    stream.resume();
  });
  gunzip.on('data', (c: Buffer) => {
    unpacked += c.length;
    if (unpacked > maxUnpacked) stop(gunzip, new AppError('TOO_LARGE', `${what}: unpacks to more than ${maxUnpacked} bytes`));
  });
  try {
    await pipeline(Readable.from([data]), gunzip, extract);
  } catch {
    throw failure ?? bad('not a gzipped tar file');
  }
}
