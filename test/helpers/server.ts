import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import type { Services } from '../../src/repos/services.js';
import { buildApp } from '../../src/server/app.js';
import { createLogger, createServices } from '../../src/server/services.js';
import { stackFlags } from './stores.js';
import { sha256hex } from '../../src/auth/secrets.js';

/** An admin API token every startServer() server knows (clients that must send some token use it). */
export const SUITE_TOKEN = 'aat_suite-token-known-to-every-test-server';

export interface TestServer {
  url: string;
  /** host:port, for clients that take a registry host (skopeo, podman). */
  host: string;
  port: number;
  dataDir: string;
  svc: Services;
  app: FastifyInstance;
  config: Config;
  /** `Authorization` header value of the bootstrap admin (its password from data_dir/admin.password). */
  adminAuth: string;
  /** ARTIFACTAPI_* variables naming the same stores, for CLI commands run on the data dir (`gc`, `audit`) in the stack pass. */
  storeEnv: Record<string, string>;
  /** POST /api/v1/repositories */
  addRepo(body: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}

/**
 * A real server on 127.0.0.1:0 over a fresh temp data dir (SQLite + fs CAS by default).
 * `flags` are dotted config keys, e.g. { 'remote.upstream_timeout': '500ms' }.
 */
export async function startServer(
  flags: Record<string, unknown> = {}, o: { env?: NodeJS.ProcessEnv; keepDataDir?: string; logLines?: string[] } = {},
): Promise<TestServer> {
  const dataDir = o.keepDataDir ?? (await mkdtemp(join(tmpdir(), 'artifactapi-test-')));
  // ARTIFACTAPI_TEST_STACK=1: the same test over Postgres + S3 + Redis (test/helpers/stores.ts).
  const stack = process.env.ARTIFACTAPI_TEST_STACK === '1' && !('database.url' in flags) ? await stackFlags() : undefined;
  const config = loadConfig({
    noDefaultFile: true,
    env: o.env ?? {},
    // Suites about formats and stores run with anonymous write (a trusted network), as before auth;
    // auth tests set auth.anonymous themselves. The management API always needs the admin (adminAuth).
    flags: { data_dir: dataDir, 'server.log_level': process.env.TEST_LOG_LEVEL ?? 'silent', 'auth.anonymous': 'write', ...stack?.flags, ...flags },
  });
  // `logLines` collects the server's pino lines (set server.log_level in flags to see them).
  const dest = o.logLines && { write: (line: string) => void o.logLines!.push(line) };
  const svc = await createServices(config, createLogger(config, dest || undefined));
  const app = await buildApp(svc);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  const url = `http://127.0.0.1:${port}`;
  // The npm suites' `_authToken`: a real admin token with a known secret.
  await svc.auth.store.tokens.put({ id: 'suite', hash: sha256hex(SUITE_TOKEN), user: 'admin', createdAt: Date.now() }).catch(() => {});
  const adminPassword = (await readFile(join(dataDir, 'admin.password'), 'utf8').catch(() => '')).trim();
  const adminAuth = `Basic ${Buffer.from(`admin:${adminPassword}`).toString('base64')}`;
  return {
    url,
    host: `127.0.0.1:${port}`,
    port,
    dataDir,
    svc,
    app,
    config,
    adminAuth,
    storeEnv: Object.fromEntries(Object.entries(stack?.flags ?? {}).map(([k, v]) => [`ARTIFACTAPI_${k.replace('.', '_').toUpperCase()}`, String(v)])),
    async addRepo(body) {
      const res = await fetch(`${url}/api/v1/repositories`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: adminAuth }, body: JSON.stringify(body) });
      if (res.status !== 201) throw new Error(`addRepo ${JSON.stringify(body)}: ${res.status} ${await res.text()}`);
    },
    async close() {
      await app.close();
      await svc.close();
      await stack?.cleanup();
      if (!o.keepDataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
