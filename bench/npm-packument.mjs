#!/usr/bin/env node
/**
 * Large-packument benchmark: peak RSS and req/s of `artifactapi serve` while clients hammer one
 * ~10 MB packument (the size of typescript's or @types/node's) through an npm remote repo.
 *
 *   npx tsc -p . && node bench/npm-packument.mjs [--rounds 20] [--concurrency 16] [--versions 2500]
 *
 * Starts a loopback upstream (node:http, this process) serving a generated packument, and
 * `bin/artifactapi serve` on a free port with a temp data dir. First 16 concurrent cold
 * requests (one upstream fetch between them), then `--rounds` times: 16
 * concurrent GETs of the full packument, 16 of the abbreviated one (npm's Accept), both with
 * `Accept-Encoding: gzip` like npm, and one round without gzip. Prints req/s, bytes per response
 * and the server's peak RSS (VmHWM from /proc). Target: peak RSS < 200 MB. Everything it starts
 * is stopped by PID at the end; the run is bounded by --rounds.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { opt, ROOT } from './args.mjs';

const ROUNDS = opt('rounds', 20);
const CONCURRENCY = opt('concurrency', 16);
const VERSIONS = opt('versions', 2500);
const ABBREV = 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*';
const log = (...a) => console.error('[bench]', ...a);

/** A packument shaped like a busy package's: many versions, each with a readme-sized manifest. */
function packument(base) {
  const versions = {};
  const time = { created: '2020-01-01T00:00:00.000Z', modified: '2026-01-01T00:00:00.000Z' };
  for (let i = 0; i < VERSIONS; i++) {
    const v = `${Math.floor(i / 100)}.${i % 100}.0`;
    const data = `huge@${v}`;
    versions[v] = {
      name: 'huge', version: v, description: 'a big package', license: 'MIT',
      dependencies: { [`dep-${i % 37}`]: `^${i % 9}.0.0` }, devDependencies: { typescript: '^5.0.0', vitest: '^4.0.0' },
      scripts: { build: 'tsc -p .', test: 'vitest run' }, readme: `# huge ${v}\n${'lorem ipsum dolor sit amet '.repeat(120)}`,
      dist: {
        tarball: `${base}/huge/-/huge-${v}.tgz`, shasum: createHash('sha1').update(data).digest('hex'),
        integrity: `sha512-${createHash('sha512').update(data).digest('base64')}`,
      },
    };
    time[v] = '2024-01-01T00:00:00.000Z';
  }
  return Buffer.from(JSON.stringify({ _id: 'huge', name: 'huge', 'dist-tags': { latest: Object.keys(versions).at(-1) }, versions, time }));
}

function listen(server) {
  return new Promise((res) => server.listen(0, '127.0.0.1', () => res(server.address().port)));
}

async function freePort() {
  const s = http.createServer();
  const port = await listen(s);
  await new Promise((r) => s.close(r));
  return port;
}

function get(url, headers) {
  return new Promise((resolve, reject) => {
    http.get(url, { headers }, (res) => {
      let bytes = 0;
      res.on('data', (c) => (bytes += c.length));
      res.on('end', () => (res.statusCode === 200 ? resolve(bytes) : reject(new Error(`${url}: ${res.statusCode}`))));
      res.on('error', reject);
    }).on('error', reject);
  });
}

async function peakRss(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
  return { hwm: kb('VmHWM') / 1024, rss: kb('VmRSS') / 1024 };
}

const upstream = http.createServer();
let body;
let upstreamHits = 0;
upstream.on('request', (req, res) => {
  upstreamHits++;
  if (req.url !== '/huge') return void res.writeHead(404).end('{}');
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length), etag: '"huge-1"' });
  res.end(body);
});
const upPort = await listen(upstream);
body = packument(`http://127.0.0.1:${upPort}`);
log(`packument: ${(body.length / 1e6).toFixed(1)} MB, ${VERSIONS} versions`);

const dataDir = await mkdtemp(join(tmpdir(), 'artifactapi-bench-packument-'));
const port = await freePort();
const server = spawn(process.execPath, [join(ROOT, 'bin/artifactapi'), 'serve', '--workers', '0', '--port', String(port), '--host', '127.0.0.1', '--data-dir', dataDir], {
  stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ARTIFACTAPI_SERVER_LOG_LEVEL: 'warn', ARTIFACTAPI_AUTH_ANONYMOUS: 'admin' },
});
const stop = async () => {
  if (server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
  upstream.closeAllConnections();
  upstream.close();
  await rm(dataDir, { recursive: true, force: true });
};
try {
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/health`)).ok) break;
    } catch { /* gone already */ }
    if (i > 100 || server.exitCode !== null) throw new Error('server did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  const add = await fetch(`${base}/api/v1/repositories`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'npmjs', format: 'npm', kind: 'remote', upstream: `http://127.0.0.1:${upPort}/`, metadata_ttl: '1h' }),
  });
  if (add.status !== 201) throw new Error(`repo add: ${add.status} ${await add.text()}`);
  // cold: the first requests all miss at once
  await Promise.all(Array.from({ length: CONCURRENCY }, () => get(`${base}/npmjs/huge`, { 'accept-encoding': 'gzip' })));
  const cold = await peakRss(server.pid);
  log(`server RSS after ${CONCURRENCY} concurrent cold requests: ${cold.rss.toFixed(0)} MB (peak ${cold.hwm.toFixed(0)} MB)`);

  const url = `${base}/npmjs/huge`;
  const kinds = [
    { name: 'full, gzip', headers: { accept: 'application/json', 'accept-encoding': 'gzip' } },
    { name: 'abbreviated, gzip', headers: { accept: ABBREV, 'accept-encoding': 'gzip' } },
    { name: 'full, identity', headers: { accept: 'application/json' } },
  ];
  const results = [];
  for (const k of kinds) {
    const rounds = k.name.endsWith('identity') ? Math.max(1, Math.floor(ROUNDS / 4)) : ROUNDS;
    let bytes = 0;
    const t0 = performance.now();
    for (let r = 0; r < rounds; r++) {
      const sizes = await Promise.all(Array.from({ length: CONCURRENCY }, () => get(url, k.headers)));
      bytes = sizes[0];
    }
    const s = (performance.now() - t0) / 1000;
    results.push({ requests: k.name, 'req/s': Math.round((rounds * CONCURRENCY) / s), 'bytes/response': bytes });
  }
  const peak = await peakRss(server.pid);
  console.table(results);
  console.log(`upstream requests: ${upstreamHits}`);
  console.log(`server peak RSS: ${peak.hwm.toFixed(0)} MB (now ${peak.rss.toFixed(0)} MB; target < 200 MB)`);
  process.exitCode = peak.hwm < 200 ? 0 : 1;
} finally {
  await stop();
}
