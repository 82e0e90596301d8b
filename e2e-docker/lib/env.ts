import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The black-box suite's only inputs: where artifactapi answers, and where the
 * mock upstream is as seen by artifactapi (inside compose: http://upstream:8080)
 * and as seen by the suite (for its hit counter).
 */
export const BASE = (process.env.ARTIFACTAPI_URL ?? 'http://127.0.0.1:8001').replace(/\/+$/, '');
/** Optional second instance on the same Postgres + S3 + Redis (the process stack starts one). */
export const BASE_2 = (process.env.ARTIFACTAPI_URL_2 ?? '').replace(/\/+$/, '');
export const UPSTREAM_FOR_SERVER = (process.env.E2E_UPSTREAM_URL ?? 'http://upstream:8080').replace(/\/+$/, '');
export const UPSTREAM_FOR_TESTS = (process.env.E2E_UPSTREAM_PUBLIC_URL ?? process.env.E2E_UPSTREAM_URL ?? 'http://127.0.0.1:8002').replace(/\/+$/, '');

/** A per-run suffix: the compose stack keeps its volumes, so names must not collide between runs. */
export const RUN = process.env.E2E_RUN_ID ?? randomBytes(3).toString('hex');
export const repoName = (s: string) => `e2e-${RUN}-${s}`;

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
/** Bytes of a fixture, e.g. fixture('generic/releases/tool/1.0.0/x.tar.gz'); the mock upstream serves the same tree. */
export const fixture = (path: string) => readFileSync(join(FIXTURES, path));
