import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Config } from '../../src/config/schema.js';
import type { Digest } from '../../src/lib/digest.js';
import { collect } from '../../src/lib/streams.js';
import type { BlobStore } from '../../src/storage/blob/types.js';

/** Puts `bytes` under `d` through the store's own interface, whatever they hash to (fs and S3 alike). */
export async function replaceBlob(blob: BlobStore, d: Digest, bytes: Buffer): Promise<void> {
  await blob.delete(d);
  const w = blob.writer();
  await pipeline(Readable.from([bytes]), w.stream);
  await blob.stage?.(w.staged, d, bytes.length);
  await blob.commit(w.staged, d, bytes.length);
  await blob.discard(w.staged);
}

/** Flips one byte in the middle of a stored blob (bit rot), through the BlobStore. */
export async function corruptBlob(blob: BlobStore, d: Digest): Promise<void> {
  const buf = await collect(await blob.read(d));
  buf[Math.floor(buf.length / 2)] ^= 0xff;
  await replaceBlob(blob, d, buf);
}

/** Environment that points a CLI process (`gc`, `verify`) at the same stores as a test server's config. */
export function storesEnv(c: Config): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ARTIFACTAPI_DATABASE_URL: c.database.url, ARTIFACTAPI_STORAGE_TYPE: c.storage.type, ARTIFACTAPI_STORAGE_PATH: c.storage.path };
  if (c.storage.type === 's3') {
    Object.assign(env, {
      ARTIFACTAPI_STORAGE_ENDPOINT: c.storage.endpoint, ARTIFACTAPI_STORAGE_BUCKET: c.storage.bucket,
      ARTIFACTAPI_STORAGE_ACCESS_KEY: c.storage.access_key, ARTIFACTAPI_STORAGE_SECRET_KEY: c.storage.secret_key,
      ARTIFACTAPI_STORAGE_FORCE_PATH_STYLE: String(c.storage.force_path_style),
    });
  }
  if (c.redis.url) env.ARTIFACTAPI_REDIS_URL = c.redis.url;
  return env;
}
