#!/usr/bin/env node
/**
 * The cost of auth on the hot reads: req/s of a cached small-file GET (generic) and a manifest GET
 * (docker), each sent anonymously (auth.anonymous = "read": the before-hook checks a repo level
 * only) and with a valid Bearer token (an API token, cached per instance behind the store's auth
 * epoch; docker's a signed token), against one `artifactapi serve` in the same run, in alternating rounds.
 *
 *   npx tsc -p . && node bench/auth.mjs [--seconds 3] [--rounds 3] [--concurrency 32]
 *
 * Loopback only; the server (started by PID, with a temp data dir) is stopped at the end.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { opt, ROOT } from './args.mjs';

const SECONDS = opt('seconds', 3);
const ROUNDS = opt('rounds', 3);
const CONCURRENCY = opt('concurrency', 32);
const log = (...a) => console.error('[bench]', ...a);

const dir = await mkdtemp(join(tmpdir(), 'bench-auth-'));
const child = spawn(process.execPath, [join(ROOT, 'bin/artifactapi'), 'serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', join(dir, 'data'), '--workers', '0'], {
  env: { ...process.env, ARTIFACTAPI_SERVER_LOG_LEVEL: 'info', ARTIFACTAPI_AUTH_ANONYMOUS: 'read' }, stdio: ['ignore', 'pipe', 'inherit'],
});
const base = await new Promise((res, rej) => {
  let buf = '';
  // The listening line is at info; request lines after it are read and dropped.
  child.stdout.on('data', (d) => {
    if (buf === null) return;
    buf += d;
    const m = /"address":"(http:[^"]+)"/.exec(buf);
    if (m) {
      buf = null;
      res(m[1]);
    }
  });
  child.on('exit', (c) => rej(new Error(`serve exited ${c}`)));
});
const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function request(method, path, headers = {}, body) {
  return new Promise((res, rej) => {
    const req = http.request(`${base}${path}`, { method, headers, agent }, (r) => {
      const chunks = [];
      r.on('data', (c) => chunks.push(c));
      r.on('end', () => res({ status: r.statusCode, body: Buffer.concat(chunks) }));
    });
    req.on('error', rej);
    req.end(body);
  });
}

try {
  const password = (await readFile(join(dir, 'data/admin.password'), 'utf8')).trim();
  const admin = `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`;
  const json = { 'content-type': 'application/json', authorization: admin };
  for (const r of [{ name: 'files', format: 'generic', kind: 'local' }, { name: 'dock', format: 'docker', kind: 'local' }]) {
    const res = await request('POST', '/api/v1/repositories', json, JSON.stringify(r));
    if (res.status !== 201) throw new Error(`repo ${r.name}: ${res.status} ${res.body}`);
  }
  await request('PUT', '/files/small.txt', { authorization: admin }, Buffer.alloc(1024, 1));
  // A one-layer image, pushed with the admin's Basic credentials (accepted on /v2 too).
  const layer = Buffer.alloc(512, 2);
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const digest = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  for (const b of [layer, config]) {
    const up = await request('POST', `/v2/dock/app/blobs/uploads/?digest=${digest(b)}`, { authorization: admin, 'content-type': 'application/octet-stream' }, b);
    if (up.status !== 201) throw new Error(`blob: ${up.status} ${up.body}`);
  }
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digest(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digest(layer), size: layer.length }],
  }));
  const put = await request('PUT', '/v2/dock/app/manifests/v1', { authorization: admin, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, manifest);
  if (put.status !== 201) throw new Error(`manifest: ${put.status} ${put.body}`);

  const tok = await request('POST', '/api/v1/tokens', json, '{}');
  const apiToken = JSON.parse(tok.body).token;
  const dt = await request('GET', '/v2/token?service=artifactapi&scope=repository:dock/app:pull', { authorization: admin });
  const dockerToken = JSON.parse(dt.body).token;
  const accept = 'application/vnd.oci.image.manifest.v1+json';
  const cases = [
    ['small file, anonymous', '/files/small.txt', {}],
    ['small file, Bearer API token', '/files/small.txt', { authorization: `Bearer ${apiToken}` }],
    ['manifest, anonymous', '/v2/dock/app/manifests/v1', { accept }],
    ['manifest, docker Bearer token', '/v2/dock/app/manifests/v1', { accept, authorization: `Bearer ${dockerToken}` }],
  ];
  for (const [name, path, headers] of cases) {
    const r = await request('GET', path, headers);
    if (r.status !== 200) throw new Error(`${name}: ${r.status} ${r.body}`);
  }

  // The server's CPU time (user + system, clock ticks of 10 ms) from /proc: what a request costs it,
  // apart from how fast this client (on the same cores) can send.
  const cpuTicks = () => readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ').slice(11, 13).reduce((a, b) => a + Number(b), 0);
  const cpu = Object.fromEntries(cases.map(([name]) => [name, { ticks: 0, n: 0 }]));
  const rate = async (path, headers, name) => {
    let n = 0;
    const t0 = cpuTicks();
    const end = Date.now() + SECONDS * 1000;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < end) {
        const r = await request('GET', path, headers);
        if (r.status !== 200) throw new Error(`${path}: ${r.status}`);
        n++;
      }
    }));
    cpu[name].ticks += cpuTicks() - t0;
    cpu[name].n += n;
    return n / SECONDS;
  };
  const results = Object.fromEntries(cases.map(([name]) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, path, headers] of cases) results[name].push(await rate(path, headers, name));
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)]));
  for (const [k, v] of Object.entries(m)) console.log(`${k.padEnd(32)} ${v.toFixed(0)} req/s`);
  console.log(`small file: with token / anonymous = ${(m['small file, Bearer API token'] / m['small file, anonymous']).toFixed(2)}`);
  console.log(`manifest:   with token / anonymous = ${(m['manifest, docker Bearer token'] / m['manifest, anonymous']).toFixed(2)}`);
  const us = (k) => (cpu[k].ticks * 10_000) / cpu[k].n;
  for (const k of Object.keys(cpu)) console.log(`${k.padEnd(32)} ${us(k).toFixed(0)} µs server CPU per request`);
  console.log(`server CPU per request, small file: token / anonymous = ${(us('small file, Bearer API token') / us('small file, anonymous')).toFixed(2)}`);
  console.log(`server CPU per request, manifest:   token / anonymous = ${(us('manifest, docker Bearer token') / us('manifest, anonymous')).toFixed(2)}`);
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  agent.destroy();
  await rm(dir, { recursive: true, force: true });
  log('done');
}
