import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import S3rver from 's3rver';

/** Real backing services for adapter tests: set by scripts/ci-services.sh (source /tmp/artifactapi-ci.env). */
export const POSTGRES_URL = process.env.ARTIFACTAPI_TEST_POSTGRES_URL ?? '';
export const REDIS_URL = process.env.ARTIFACTAPI_TEST_REDIS_URL ?? '';
export const NO_POSTGRES = 'ARTIFACTAPI_TEST_POSTGRES_URL is not set (run scripts/ci-services.sh and source /tmp/artifactapi-ci.env)';
export const NO_REDIS = 'ARTIFACTAPI_TEST_REDIS_URL is not set (run scripts/ci-services.sh and source /tmp/artifactapi-ci.env)';

export const uniq = (p: string) => `${p}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;

/**
 * A fresh, empty Postgres schema; returns a URL whose connections use it
 * (search_path through the libpq `options` parameter) and a drop function.
 */
export async function freshPgSchema(baseUrl = POSTGRES_URL): Promise<{ url: string; drop(): Promise<void> }> {
  const schema = uniq('t');
  const c = new pg.Client({ connectionString: baseUrl });
  await c.connect();
  await c.query(`CREATE SCHEMA ${schema}`);
  await c.end();
  const u = new URL(baseUrl);
  u.searchParams.set('options', `-c search_path=${schema}`);
  return {
    url: u.toString(),
    async drop() {
      const d = new pg.Client({ connectionString: baseUrl });
      await d.connect();
      await d.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await d.end();
    },
  };
}

/** s3rver (the npm S3 stand-in) on 127.0.0.1:0 over a temp dir. */
export interface TestS3 {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  close(): Promise<void>;
}

export async function startS3(): Promise<TestS3> {
  const dir = await mkdtemp(join(tmpdir(), 'artifactapi-s3-'));
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir });
  const addr = (await server.run()) as { port: number };
  return {
    endpoint: `http://127.0.0.1:${addr.port}`,
    accessKey: 'S3RVER',
    secretKey: 'S3RVER',
    async close() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

let sharedS3: Promise<TestS3> | undefined;

/**
 * ARTIFACTAPI_TEST_STACK=1: startServer() runs on Postgres (fresh schema) + S3 (s3rver, fresh bucket)
 * + Redis instead of SQLite + fs + memory, so any server test can run over the full stack.
 */
export async function stackFlags(): Promise<{ flags: Record<string, unknown>; cleanup(): Promise<void> }> {
  if (!POSTGRES_URL || !REDIS_URL) throw new Error(`ARTIFACTAPI_TEST_STACK=1 needs ARTIFACTAPI_TEST_POSTGRES_URL and ARTIFACTAPI_TEST_REDIS_URL`);
  sharedS3 ??= startS3();
  const s3 = await sharedS3;
  const schema = await freshPgSchema();
  return {
    flags: {
      'database.url': schema.url, 'database.pool_size': 5,
      'storage.type': 's3', 'storage.endpoint': s3.endpoint, 'storage.bucket': uniq('t').replace(/_/g, '-'),
      'storage.access_key': s3.accessKey, 'storage.secret_key': s3.secretKey, 'storage.force_path_style': true,
      'redis.url': REDIS_URL,
    },
    cleanup: () => schema.drop(),
  };
}
