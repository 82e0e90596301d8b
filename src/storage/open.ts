import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { FsBlobStore } from './blob/fs.js';
import type { BlobStore } from './blob/types.js';
import { MemoryCoordinator } from './coord/memory.js';
import type { Coordinator } from './coord/types.js';
import { SqliteMetaStore } from './meta/sqlite.js';
import type { MetaStore } from './meta/types.js';

export interface Stores {
  meta: MetaStore;
  blob: BlobStore;
  coord: Coordinator;
  /** Local scratch space (upload sessions, spools that must stay local). */
  workDir: string;
  close(): Promise<void>;
}

/** The only place that picks adapters. */
export async function openStores(config: Config): Promise<Stores> {
  const meta = await openMeta(config);
  const blob = await openBlob(config);
  const coord = await openCoord(config);
  return {
    meta,
    blob,
    coord,
    workDir: join(config.data_dir, 'work'),
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
    throw new Error('database.url: postgres is not supported by this build yet');
  }
  if (url.startsWith('sqlite://')) return SqliteMetaStore.open(url.slice('sqlite://'.length));
  throw new Error(`database.url: unsupported scheme in "${url}" (use sqlite:// or postgres://)`);
}

async function openBlob(config: Config): Promise<BlobStore> {
  if (config.storage.type === 's3') {
    throw new Error('storage.type: s3 is not supported by this build yet');
  }
  return FsBlobStore.open(config.storage.path);
}

async function openCoord(config: Config): Promise<Coordinator> {
  if (config.redis.url) {
    throw new Error('redis.url: redis is not supported by this build yet');
  }
  return new MemoryCoordinator();
}
