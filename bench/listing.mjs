#!/usr/bin/env node
// One local index listing page (files under a package's prefix) in a repo of ROWS file rows,
// over the metadata adapters this run can reach: SQLite always, Postgres when
// ARTIFACTAPI_TEST_POSTGRES_URL is set. Prints the median time of one prefix listing.
//
//   npx tsc -p . && node bench/listing.mjs            # ROWS=100000 ROUNDS=200
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteMetaStore } from '../dist/storage/meta/sqlite.js';
import { PostgresMetaStore } from '../dist/storage/meta/postgres.js';

const ROWS = Number(process.env.ROWS ?? 100_000);
const ROUNDS = Number(process.env.ROUNDS ?? 200);
const PACKAGES = ROWS / 10;
const repo = `bench-${process.pid}`;

function row(i) {
  const pkg = `pkg${String(i % PACKAGES).padStart(6, '0')}`;
  const now = Date.now();
  return { repo, path: `${pkg}/${pkg}-${Math.floor(i / PACKAGES)}.0.tar.gz`, digest: `sha256:${'0'.repeat(64)}`, size: 1,
    source: 'local', fetchedAt: now, lastAccess: now };
}

async function measure(name, store) {
  const batch = 2000;
  for (let i = 0; i < ROWS; i += batch) {
    await store.tx(async (m) => { for (let j = i; j < Math.min(ROWS, i + batch); j++) await m.files.put(row(j)); });
  }
  const times = [];
  let listed = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const prefix = `pkg${String((r * 7919) % PACKAGES).padStart(6, '0')}/`;
    const t0 = process.hrtime.bigint();
    for await (const _ of store.files.list(repo, prefix)) listed++;
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  if (listed !== ROUNDS * 10) throw new Error(`${name}: listed ${listed} rows, expected ${ROUNDS * 10}`);
  console.log(`${name.padEnd(9)} ${ROWS} rows: one prefix page (10 files) median ${times[times.length >> 1].toFixed(3)} ms, p95 ${times[Math.floor(times.length * 0.95)].toFixed(3)} ms`);
  await store.files.removeRepo(repo);
}

const dir = mkdtempSync(join(tmpdir(), 'bench-listing-'));
try {
  const sqlite = SqliteMetaStore.open(join(dir, 'bench.db'));
  await measure('sqlite', sqlite);
  await sqlite.close();
  if (process.env.ARTIFACTAPI_TEST_POSTGRES_URL) {
    const pg = await PostgresMetaStore.open(process.env.ARTIFACTAPI_TEST_POSTGRES_URL, { poolSize: 4 });
    await measure('postgres', pg);
    await pg.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
