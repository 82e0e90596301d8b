import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { FsBlobStore } from './blob/fs.js';
import type { BlobStore } from './blob/types.js';
import { MemoryCoordinator } from './coord/memory.js';
import type { Coordinator } from './coord/types.js';
import { SqliteMetaStore } from './meta/sqlite.js';
import type { MetaStore } from './meta/types.js';
import { withFileCache } from './meta/cached.js';

export interface Stores {
  meta: MetaStore;
  blob: BlobStore;
  coord: Coordinator;
  close(): Promise<void>;
}

/** The only place that picks adapters. */
export async function openStores(config: Config): Promise<Stores> {
  const meta = await openMeta(config);
  let blob: BlobStore | undefined;
  let coord: Coordinator;
  try {
    blob = await openBlob(config);
    coord = await openCoord(config);
  } catch (err) {
    await blob?.close?.().catch(() => {});
    await meta.close().catch(() => {});
    throw err;
  }
  return {
    meta: withFileCache(meta),
    blob,
    coord,
    async close() {
      await coord.close?.();
      await blob.close?.();
      await meta.close();
    },
  };
}

async function openMeta(config: Config): Promise<MetaStore> {
  const url = config.database.url;
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    try {
      // Backends load only when configured: the embedded default never pays for pg, ioredis or the AWS SDK.
      const { PostgresMetaStore } = await import('./meta/postgres.js');
      return await PostgresMetaStore.open(url, { poolSize: config.database.pool_size });
    } catch (err) {
      throw new Error(`database.url: cannot use ${masked(url)}: ${(err as Error).message}`);
    }
  }
  if (url.startsWith('sqlite://')) return SqliteMetaStore.open(url.slice('sqlite://'.length), { busyTimeout: config.database.busy_timeout });
  throw new Error(`database.url: unsupported scheme in "${masked(url)}" (use sqlite:// or postgres://)`);
}

async function openBlob(config: Config): Promise<BlobStore> {
  if (config.storage.type === 's3') {
    const s = config.storage;
    const { S3BlobStore } = await import('./blob/s3.js');
    return S3BlobStore.open({
      endpoint: s.endpoint, bucket: s.bucket, region: s.region, accessKey: s.access_key, secretKey: s.secret_key,
      forcePathStyle: s.force_path_style, tempDir: join(config.data_dir, 'work', 'tmp'),
    });
  }
  return FsBlobStore.open(config.storage.path);
}

async function openCoord(config: Config): Promise<Coordinator> {
  if (config.redis.url) {
    try {
      const { RedisCoordinator } = await import('./coord/redis.js');
      return await RedisCoordinator.open(config.redis.url);
    } catch (err) {
      throw new Error(`redis.url: cannot use ${masked(config.redis.url)}: ${(err as Error).message}`);
    }
  }
  return new MemoryCoordinator();
}

/** A URL fit for an error message: no password. */
function masked(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}
