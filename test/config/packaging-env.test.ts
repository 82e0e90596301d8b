import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { ROOT_KEYS } from '../../src/config/schema.js';
import { SCHEMA } from '../../src/formats/index.js';

/**
 * The packaging files configure artifactapi only through ARTIFACTAPI_* variables, and
 * loadConfig ignores a variable it does not know: a misspelt key in docker-compose.yml would
 * pass silently. Every ARTIFACTAPI_* name they set must map to a config key, and the values
 * they set (with the compose defaults filled in) must load into the stack the files describe.
 */
const root = new URL('../../', import.meta.url);
const read = (f: string) => readFileSync(new URL(f, root), 'utf8');

const known = new Set<string>(['ARTIFACTAPI_PORT', 'ARTIFACTAPI_HOST', 'ARTIFACTAPI_CONFIG']);
for (const k of Object.keys(ROOT_KEYS)) known.add(`ARTIFACTAPI_${k.toUpperCase()}`);
for (const [section, keys] of Object.entries(SCHEMA.sections)) {
  for (const k of Object.keys(keys)) known.add(`ARTIFACTAPI_${section.toUpperCase()}_${k.toUpperCase()}`);
}

/** `ARTIFACTAPI_X: value` lines of a compose file, per service (2-space indented service names). */
function composeEnv(text: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  let service = '';
  let inServices = false;
  for (const line of text.split('\n')) {
    if (/^\S/.test(line)) inServices = line.startsWith('services:');
    const svc = inServices ? /^ {2}([\w.-]+):\s*$/.exec(line) : null;
    if (svc) service = svc[1];
    const kv = /^\s+(ARTIFACTAPI_[A-Z0-9_]+):\s*(.*?)\s*$/.exec(line);
    if (kv && service) {
      if (!out.has(service)) out.set(service, {});
      out.get(service)![kv[1]] = kv[2].replace(/^"(.*)"$/, '$1');
    }
  }
  return out;
}

/** Compose interpolation with no .env: `${VAR:-default}` -> default, `${VAR}` -> ''. */
const interpolate = (v: string) => v.replace(/\$\{[A-Z0-9_]+(?::?-([^}]*))?\}/g, (_m, d: string | undefined) => d ?? '');

describe('ARTIFACTAPI_* variables in the packaging files', () => {
  const base = composeEnv(read('docker-compose.yml'));
  const e2e = composeEnv(read('docker-compose.e2e.yml'));
  const dockerfileEnv = [...read('Dockerfile').matchAll(/\b(ARTIFACTAPI_[A-Z0-9_]+)=/g)].map((m) => m[1]);

  it('the parser finds the files\' variables (so the checks below are not vacuous)', () => {
    expect(Object.keys(base.get('artifactapi') ?? {})).toContain('ARTIFACTAPI_DATABASE_URL');
    expect(Object.keys(e2e.get('artifactapi-2') ?? {})).toContain('ARTIFACTAPI_REDIS_URL');
    expect(dockerfileEnv).toContain('ARTIFACTAPI_DATA_DIR');
  });

  it('each one names a config key', () => {
    const names = [...dockerfileEnv, ...[...base.values(), ...e2e.values()].flatMap((env) => Object.keys(env))];
    expect(names.filter((n) => !known.has(n))).toEqual([]);
  });

  it('docker-compose.yml with its defaults loads into Postgres + S3 (MinIO) + Redis', () => {
    const env = Object.fromEntries(Object.entries(base.get('artifactapi')!).map(([k, v]) => [k, interpolate(v)]));
    const c = loadConfig({ noDefaultFile: true, env });
    expect(c.database.url).toBe('postgres://artifactapi:artifactapi@postgres:5432/artifactapi');
    expect(c.database.pool_size).toBe(10);
    expect(c.storage.type).toBe('s3');
    expect(c.storage.endpoint).toBe('http://minio:9000');
    expect(c.storage.bucket).toBe('artifactapi');
    expect(c.storage.force_path_style).toBe(true);
    expect(c.redis.url).toBe('redis://redis:6379');
    expect(c.server.log_level).toBe('info');
  });

  it('the second e2e instance uses the same stores as the first', () => {
    const first = base.get('artifactapi')!;
    const second = e2e.get('artifactapi-2')!;
    for (const k of ['ARTIFACTAPI_DATABASE_URL', 'ARTIFACTAPI_STORAGE_TYPE', 'ARTIFACTAPI_STORAGE_ENDPOINT', 'ARTIFACTAPI_STORAGE_BUCKET', 'ARTIFACTAPI_STORAGE_ACCESS_KEY', 'ARTIFACTAPI_STORAGE_SECRET_KEY', 'ARTIFACTAPI_STORAGE_FORCE_PATH_STYLE', 'ARTIFACTAPI_REDIS_URL']) {
      expect(second[k], k).toBe(first[k]);
    }
  });
});
