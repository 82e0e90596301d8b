#!/usr/bin/env node
// Benchmarks artifactapi's generic repos against nginx, in the same run, on the same files.
// Self-contained: makes its own files, data dirs, nginx configs, free loopback ports; ends what it
// started by PID. Needs: nginx, wrk, curl on PATH, and a built dist/ (`npx tsc -p .`).
//
//   node bench/generic.mjs                 # everything
//   node bench/generic.mjs small big       # only some: small | big | cold | rss | rss-s3 | helm | rpm (helm, rpm run only when named)
//   (rss-s3: the RSS test with [storage] type = "s3" against s3rver, also sampling the data dir's peak size)
//   BENCH_SECONDS=10 NGINX_WORKERS=1 node bench/generic.mjs
//
// Env: BENCH_SECONDS (wrk duration, default 8), NGINX_WORKERS (default 1: one process, like node),
// COLD_RATE (upstream limit_rate for the cold test, default 25m = 25 MB/s, a fast internet link), RSS_MB (size of the
// files of the RSS test, default 1024), KEEP=1 (keep the temp dir).
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const NGINX_WORKERS = process.env.NGINX_WORKERS ?? '1';
const COLD_RATE = process.env.COLD_RATE ?? '25m';
const RSS_MB = Number(process.env.RSS_MB ?? 1024);
const only = process.argv.slice(2);
const want = (n) => only.length === 0 || only.includes(n);
const work = mkdtempSync(join(tmpdir(), 'artifactapi-bench-'));
chmodSync(work, 0o755); // nginx workers may run as nobody
const started = [];
const results = [];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error('#', ...a);

function freePort() {
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

function makeFile(path, bytes) {
  // Pseudo-random, incompressible enough, fast: repeat a 1 MiB random block with a counter.
  const block = Buffer.alloc(Math.min(bytes, 1 << 20));
  for (let i = 0; i < block.length; i++) block[i] = (Math.random() * 256) | 0;
  const fd = openSync(path, 'w');
  let left = bytes;
  let n = 0;
  while (left > 0) {
    block.writeUInt32LE(n++, 0);
    const len = Math.min(left, block.length);
    writeSync(fd, block, 0, len);
    left -= len;
  }
  closeSync(fd);
}

function run(cmd, args, opts = {}) {
  const p = spawn(cmd, args, { stdio: ['ignore', opts.stdout ?? 'ignore', opts.stderr ?? 'pipe'], env: { ...process.env, ...opts.env } });
  let err = '';
  p.stderr?.on('data', (d) => { err += d; });
  p.errText = () => err;
  started.push(p);
  return p;
}

function stop(p) {
  if (!p || p.exitCode !== null || p.killed) return Promise.resolve();
  return new Promise((res) => {
    p.once('exit', () => res());
    p.kill('SIGTERM');
    setTimeout(() => { if (p.exitCode === null) p.kill('SIGKILL'); }, 5000).unref();
  });
}

async function waitHttp(url, ms = 15000) {
  const t0 = Date.now();
  for (;;) {
    try {
      const r = await fetch(url);
      await r.arrayBuffer();
      if (r.status < 500) return;
    } catch { /* not yet */ }
    if (Date.now() - t0 > ms) throw new Error(`${url} did not come up`);
    await sleep(100);
  }
}

async function startArtifactapi(name, env = {}) {
  const port = await freePort();
  const dataDir = join(work, `data-${name}`);
  mkdirSync(dataDir, { recursive: true });
  const p = run(process.execPath, [join(ROOT, 'bin/artifactapi'), 'serve', '--workers', '0', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir], {
    env: { ARTIFACTAPI_CONFIG: join(work, 'none.toml'), ARTIFACTAPI_AUTH_ANONYMOUS: 'admin', ...env },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/health`);
  return { p, url, port, dataDir };
}

async function startNginx(name, serverBlock, extraHttp = '') {
  const port = await freePort();
  const prefix = join(work, `nginx-${name}`);
  mkdirSync(join(prefix, 'logs'), { recursive: true });
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(conf, `
worker_processes ${NGINX_WORKERS};
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log ${prefix}/logs/access.log;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy_temp;
  fastcgi_temp_path ${prefix}/fastcgi; uwsgi_temp_path ${prefix}/uwsgi; scgi_temp_path ${prefix}/scgi;
  sendfile on; tcp_nopush on; keepalive_requests 1000000;
  default_type application/octet-stream;
  ${extraHttp}
  server {
    listen 127.0.0.1:${port};
    ${serverBlock}
  }
}
`);
  const p = run('nginx', ['-p', prefix, '-c', conf, '-g', 'daemon off;']);
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/`).catch((e) => { throw new Error(`${e.message}: ${p.errText()}`); });
  return { p, url, port, prefix };
}

function wrk(url, { threads = 2, conns = 64, seconds = SECONDS } = {}) {
  const out = execFileSync('wrk', [`-t${threads}`, `-c${conns}`, `-d${seconds}s`, '--latency', url], { encoding: 'utf8' });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const m = /Transfer\/sec:\s+([\d.]+)(\w+)/.exec(out);
  const unit = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 }[m?.[2]] ?? 1;
  const bps = m ? Number(m[1]) * unit : NaN;
  const errors = /Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)/.exec(out)?.[0];
  if (errors) throw new Error(`wrk ${url}: ${errors}`);
  return { rps, bps, p99: /99%\s+([\d.]+\w+)/.exec(out)?.[1] };
}

async function put(url, file) {
  execFileSync('curl', ['-sf', '-o', '/dev/null', '-T', file, url]);
}

async function addRepo(base, body) {
  const r = await fetch(`${base}/api/v1/repositories`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (r.status !== 201) throw new Error(`add repo: ${r.status} ${await r.text()}`);
}

/** PUTs one request per item, 32 at a time; `req` gives each item's URL and body. */
async function burstPut(items, req) {
  let next = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < items.length) {
      const [url, body] = await req(items[next++]);
      const r = await fetch(url, { method: 'PUT', body });
      const text = await r.text();
      if (r.status !== 201) throw new Error(`PUT ${url}: ${r.status} ${text}`);
    }
  }));
}

/** A memory figure (VmRSS, VmHWM) of a process, in MB. */
function procMB(pid, field) {
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
}

function record(name, ours, nginx, unit, target, higherIsBetter = true) {
  // No peer figure (NaN): the target bounds our own figure.
  const ratio = ours / nginx;
  const measured = Number.isNaN(nginx) ? ours : ratio;
  const ok = higherIsBetter ? measured >= target : measured <= target;
  results.push({ name, ours, nginx, unit, ratio, target: `${higherIsBetter ? '>=' : '<='} ${target}`, ok });
  log(`${name}: ours ${fmt(ours, unit)} nginx ${fmt(nginx, unit)} ratio ${ratio.toFixed(2)} (target ${higherIsBetter ? '>=' : '<='} ${target})`);
}

function fmt(v, unit) {
  if (unit === 'B/s') return `${(v / 1024 ** 2).toFixed(0)} MiB/s`;
  if (unit === 's') return `${v.toFixed(2)} s`;
  if (unit === 'MB') return `${v.toFixed(1)} MB`;
  return `${v.toFixed(0)} ${unit}`;
}

// ---------------------------------------------------------------------------------------------

async function cachedGets() {
  const files = join(work, 'files');
  mkdirSync(files, { recursive: true });
  makeFile(join(files, 'small.bin'), 1024);
  makeFile(join(files, 'big.bin'), 100 * 1024 * 1024);
  const ngx = await startNginx('static', `location / { root ${files}; }`);
  const nSmall = want('small') ? wrk(`${ngx.url}/small.bin`) : null;
  const nBig = want('big') ? wrk(`${ngx.url}/big.bin`, { threads: 1, conns: 4 }) : null;
  await stop(ngx.p);
  for (const verify of ['true', 'false']) {
    const a = await startArtifactapi(`cached-${verify}`, { ARTIFACTAPI_SERVER_VERIFY_ON_READ: verify });
    await addRepo(a.url, { name: 'files', format: 'generic', kind: 'local' });
    await put(`${a.url}/files/small.bin`, join(files, 'small.bin'));
    await put(`${a.url}/files/big.bin`, join(files, 'big.bin'));
    if (nSmall) record(`cached 1 KB GET req/s (verify_on_read=${verify})`, wrk(`${a.url}/files/small.bin`).rps, nSmall.rps, 'req/s', 0.3);
    if (nBig) record(`cached 100 MB GET throughput (verify_on_read=${verify})`, wrk(`${a.url}/files/big.bin`, { threads: 1, conns: 4 }).bps, nBig.bps, 'B/s', 0.6);
    await stop(a.p);
    rmSync(a.dataDir, { recursive: true, force: true });
  }
}

/** 50 concurrent curl GETs; returns wall time and per-request first-byte times. */
async function fifty(url, expectSize) {
  const t0 = Date.now();
  const runs = Array.from({ length: 50 }, () => new Promise((res, rej) => {
    const p = spawn('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_starttransfer} %{time_total}', url]);
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.on('close', () => {
      const [code, size, ttfb, total] = out.trim().split(' ');
      if (code !== '200' || Number(size) !== expectSize) rej(new Error(`bad response ${out}`));
      else res({ ttfb: Number(ttfb), total: Number(total) });
    });
  }));
  const r = await Promise.all(runs);
  const wall = (Date.now() - t0) / 1000;
  const ttfbs = r.map((x) => x.ttfb).sort((a, b) => a - b);
  return { wall, ttfbMedian: ttfbs[25], ttfbMax: ttfbs[49] };
}

function upstreamHits(ngx, path) {
  return readFileSync(join(ngx.prefix, 'logs/access.log'), 'utf8').split('\n').filter((l) => l.includes(`GET ${path} `)).length;
}

async function remoteCold() {
  const files = join(work, 'upstream');
  mkdirSync(files, { recursive: true });
  const size = 100 * 1024 * 1024;
  makeFile(join(files, 'cold.bin'), size);
  // A real upstream is slower than loopback: limit its rate (COLD_RATE) so the fill takes a while.
  const up = await startNginx('upstream', `location / { root ${files}; limit_rate ${COLD_RATE}; }`);
  const cache = join(work, 'nginx-proxy-cache');
  const px = await startNginx('proxy', `location / { proxy_pass ${up.url}; proxy_cache c; proxy_cache_lock on; proxy_cache_lock_timeout 300s; proxy_cache_lock_age 300s; proxy_cache_valid 200 1h; proxy_buffering on; }`,
    `proxy_cache_path ${cache} levels=1:2 keys_zone=c:10m max_size=4g inactive=1h use_temp_path=off;`);
  const n = await fifty(`${px.url}/cold.bin`, size);
  const nHits = upstreamHits(up, '/cold.bin');
  await stop(px.p);
  const a = await startArtifactapi('cold');
  await addRepo(a.url, { name: 'rem', format: 'generic', kind: 'remote', upstream: `${up.url}/` });
  const ours = await fifty(`${a.url}/rem/cold.bin`, size);
  const ourHits = upstreamHits(up, '/cold.bin') - nHits;
  // Reference: a single direct download from the upstream (first byte and duration).
  const direct = await fifty(`${up.url}/cold.bin`, size).catch(() => null);
  await stop(a.p);
  await stop(up.p);
  log(`cold: nginx upstream requests ${nHits}, ours ${ourHits}; first byte median/max ours ${ours.ttfbMedian}/${ours.ttfbMax}s nginx ${n.ttfbMedian}/${n.ttfbMax}s`);
  record(`remote cold: 50 x 100 MB, wall time (upstream requests: ours ${ourHits}, nginx ${nHits})`, ours.wall, n.wall, 's', 0.5, false);
  results.push({ name: 'remote cold: median first byte (s)', ours: ours.ttfbMedian, nginx: n.ttfbMedian, unit: 's', ratio: ours.ttfbMedian / n.ttfbMedian, target: '-', ok: true });
  if (direct) log(`(50 direct upstream downloads at ${COLD_RATE}/s each: wall ${direct.wall}s, first byte median ${direct.ttfbMedian}s)`);
}

/** Bytes in files under `dir` (the data dir: CAS, temp files, spools), leaving out the SQLite database. */
function localBytes(dir) {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) n += localBytes(p);
    else if (e.isFile() && !/\.db(-wal|-shm|-journal)?$/.test(e.name)) n += statSync(p, { throwIfNoEntry: false })?.size ?? 0;
  }
  return n;
}

async function startS3rver() {
  const port = await freePort();
  const dir = join(work, 's3rver');
  mkdirSync(dir, { recursive: true });
  const p = run(process.execPath, [join(ROOT, 'node_modules/s3rver/bin/s3rver.js'), '-d', dir, '-a', '127.0.0.1', '-p', String(port), '--silent', '--configure-bucket', 'bench']);
  await waitHttp(`http://127.0.0.1:${port}/bench`).catch(() => sleep(1000));
  return {
    p,
    env: {
      ARTIFACTAPI_STORAGE_TYPE: 's3', ARTIFACTAPI_STORAGE_ENDPOINT: `http://127.0.0.1:${port}`, ARTIFACTAPI_STORAGE_BUCKET: 'bench',
      ARTIFACTAPI_STORAGE_ACCESS_KEY: 'S3RVER', ARTIFACTAPI_STORAGE_SECRET_KEY: 'S3RVER', ARTIFACTAPI_STORAGE_FORCE_PATH_STYLE: 'true',
    },
  };
}

async function rss(storage = 'fs') {
  const s3 = storage === 's3' ? await startS3rver() : undefined;
  const files = join(work, 'rss');
  mkdirSync(files, { recursive: true });
  const size = RSS_MB * 1024 * 1024;
  makeFile(join(files, 'a.bin'), size);
  makeFile(join(files, 'b.bin'), size);
  const up = await startNginx('rss-upstream', `location / { root ${files}; }`);
  const a = await startArtifactapi(`rss-${storage}`, s3?.env);
  await addRepo(a.url, { name: 'files', format: 'generic', kind: 'local' });
  await addRepo(a.url, { name: 'rem', format: 'generic', kind: 'remote', upstream: `${up.url}/` });
  await put(`${a.url}/files/a.bin`, join(files, 'a.bin'));
  let max = 0;
  let disk = 0;
  const diskBefore = localBytes(a.dataDir);
  const statusFile = `/proc/${a.p.pid}/status`;
  const sample = () => {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(statusFile, 'utf8'));
    if (m) max = Math.max(max, Number(m[1]) / 1024);
    if (s3) disk = Math.max(disk, localBytes(a.dataDir) - diskBefore);
  };
  const timer = setInterval(sample, 50);
  const curl = (args) => new Promise((res, rej) => {
    const p = spawn('curl', ['-sf', '-o', '/dev/null', ...args]);
    p.on('exit', (c) => (c === 0 ? res() : rej(new Error(`curl ${args.join(' ')} exited ${c}`))));
  });
  const t0 = Date.now();
  await Promise.all([
    curl(['-T', join(files, 'b.bin'), `${a.url}/files/up1.bin`]),
    curl(['-T', join(files, 'b.bin'), `${a.url}/files/up2.bin`]),
    curl([`${a.url}/files/a.bin`]), curl([`${a.url}/files/a.bin`]), curl([`${a.url}/files/a.bin`]),
    curl([`${a.url}/rem/b.bin`]), curl([`${a.url}/rem/b.bin`]),
  ]);
  clearInterval(timer);
  sample();
  log(`rss (${storage}): 2 uploads + 3 downloads + 2 remote fills of ${RSS_MB} MB in ${((Date.now() - t0) / 1000).toFixed(1)} s; max RSS ${max.toFixed(0)} MB${s3 ? `; data dir grew at most ${(disk / 1048576).toFixed(1)} MB` : ''}`);
  results.push({ name: `max RSS (${storage}), 2 PUT + 3 GET + 2 remote GET of ${RSS_MB} MB at once`, ours: max, nginx: NaN, unit: 'MB', ratio: NaN, target: '< 150 MB', ok: max < 150 });
  if (s3) results.push({ name: `peak local disk (s3), same load`, ours: disk / 1048576, nginx: NaN, unit: 'MB', ratio: NaN, target: '< 1 MB (no local copy)', ok: disk < 1048576 });
  await stop(a.p);
  await stop(up.p);
  if (s3) await stop(s3.p);
}

// helm: a burst of chart uploads into a local repo (index.yaml derived on write), then GET of the
// index of HELM_VERSIONS versions against nginx serving the same bytes from a file.
async function helmIndex() {
  const { default: tar } = await import('tar-stream');
  const { gzipSync } = await import('node:zlib');
  const versions = Number(process.env.HELM_VERSIONS ?? 10_000);
  const chartTgz = async (name, version) => {
    const pack = tar.pack();
    pack.entry({ name: `${name}/Chart.yaml` }, `apiVersion: v2\nname: ${name}\nversion: ${version}\ndescription: bench chart\n`);
    pack.finalize();
    const chunks = [];
    for await (const c of pack) chunks.push(c);
    return gzipSync(Buffer.concat(chunks));
  };
  const a = await startArtifactapi('helm');
  await addRepo(a.url, { name: 'charts', format: 'helm', kind: 'local' });
  const names = Array.from({ length: versions }, (_, i) => [`chart${i % 100}`, `1.${Math.floor(i / 100)}.0`]);
  const t0 = Date.now();
  await burstPut(names, async ([name, version]) => [`${a.url}/charts/${name}-${version}.tgz`, await chartTgz(name, version)]);
  const burst = (Date.now() - t0) / 1000;
  const index = Buffer.from(await (await fetch(`${a.url}/charts/index.yaml`)).arrayBuffer());
  const listed = (index.toString().match(/^ {2}- /gm) ?? []).length;
  if (listed !== versions) throw new Error(`index.yaml lists ${listed} versions, expected ${versions}`);
  record(`helm: ${versions} chart uploads (32 at a time) until index.yaml lists them all`, burst, NaN, 's', 600, false);
  const files = join(work, 'helm');
  mkdirSync(files, { recursive: true });
  writeFileSync(join(files, 'index.yaml'), index);
  const ngx = await startNginx('helm', `location / { root ${files}; }`);
  const nIndex = wrk(`${ngx.url}/index.yaml`, { threads: 1, conns: 8 });
  await stop(ngx.p);
  const ours = wrk(`${a.url}/charts/index.yaml`, { threads: 1, conns: 8 });
  // wrk runs synchronously: read the high-water mark afterwards instead of sampling.
  const max = procMB(a.p.pid, 'VmHWM');
  record(`helm: GET index.yaml of ${versions} versions (${(index.length / 1024 ** 2).toFixed(1)} MiB) req/s`, ours.rps, nIndex.rps, 'req/s', 0.3);
  record('helm: peak server RSS (uploads and GETs)', max, NaN, 'MB', 300, false);
  await stop(a.p);
}

/** RPM_PACKAGES distinct noarch RPMs with one file each, from one spec of that many subpackages (one rpmbuild run). */
function buildRpms(n) {
  const top = join(work, 'rpmbuild');
  const spec = ['Name: bench', 'Version: 1.0', 'Release: 1', 'Summary: bench', 'License: MIT', 'BuildArch: noarch', '%description', 'bench', '%install',
    `mkdir -p %{buildroot}/usr/share/bench && for i in $(seq 0 ${n - 1}); do echo $i > %{buildroot}/usr/share/bench/pkg$i.txt; done`];
  for (let i = 0; i < n; i++) {
    spec.push(`%package -n bench-pkg${i}`, `Summary: bench package ${i}`, `%description -n bench-pkg${i}`, `package ${i} of the rpm benchmark`,
      `%files -n bench-pkg${i}`, `/usr/share/bench/pkg${i}.txt`);
  }
  mkdirSync(top, { recursive: true });
  writeFileSync(join(top, 'bench.spec'), spec.join('\n') + '\n');
  execFileSync('rpmbuild', ['-bb', '--quiet', '--define', `_topdir ${top}`, join(top, 'bench.spec')], { stdio: 'pipe' });
  const dir = join(top, 'RPMS', 'noarch');
  return { dir, files: readdirSync(dir).filter((f) => f.endsWith('.rpm')) };
}

/** repodata as dnf reads it from `base`: repomd.xml, and primary.xml.gz by its href with the count of packages it lists. */
async function rpmRepodata(base) {
  const repomd = await (await fetch(`${base}/repodata/repomd.xml`)).text();
  const href = /<data type="primary">[\s\S]*?<location href="([^"]+)"/.exec(repomd)?.[1];
  if (!href) return { href, packages: 0 };
  const gz = Buffer.from(await (await fetch(`${base}/${href}`)).arrayBuffer());
  return { href, bytes: gz.length, packages: (gunzipSync(gz).toString().match(/<package /g) ?? []).length };
}

// rpm: a burst of RPM uploads into a local repo (repodata derived on write), then GETs of
// repomd.xml and primary.xml.gz against nginx serving a createrepo_c tree of the same RPMs.
async function rpmBurst() {
  const n = Number(process.env.RPM_PACKAGES ?? 1000);
  const g0 = Date.now();
  const { dir, files } = buildRpms(n);
  if (files.length !== n) throw new Error(`rpmbuild made ${files.length} RPMs, expected ${n}`);
  log(`rpm: built ${n} RPMs in ${((Date.now() - g0) / 1000).toFixed(1)} s (not timed)`);
  const a = await startArtifactapi('rpm');
  await addRepo(a.url, { name: 'rpms', format: 'rpm', kind: 'local' });
  const idle = procMB(a.p.pid, 'VmRSS');
  const t0 = Date.now();
  await burstPut(files, (f) => [`${a.url}/rpms/${f}`, readFileSync(join(dir, f))]);
  const uploaded = (Date.now() - t0) / 1000;
  let ours;
  while ((ours = await rpmRepodata(`${a.url}/rpms`)).packages !== n) {
    if (Date.now() - t0 > 600_000) throw new Error(`primary.xml.gz lists ${ours.packages} of ${n} packages after 600 s`);
    await sleep(100);
  }
  const ready = (Date.now() - t0) / 1000;
  log(`rpm: last upload answered after ${uploaded.toFixed(1)} s, primary.xml.gz complete after ${ready.toFixed(1)} s; VmHWM ${procMB(a.p.pid, 'VmHWM').toFixed(0)} MB`);
  const c0 = Date.now();
  execFileSync('createrepo_c', ['-q', '--no-database', dir], { stdio: 'pipe' });
  const createrepo = (Date.now() - c0) / 1000;
  record(`rpm: ${n} RPM uploads (32 at a time) until primary.xml.gz lists them all (createrepo_c over the files alone: ${createrepo.toFixed(1)} s)`,
    ready, NaN, 's', 600, false);
  const ngx = await startNginx('rpm', `location / { root ${dir}; }`);
  const theirs = await rpmRepodata(ngx.url);
  if (theirs.packages !== n) throw new Error(`createrepo_c's primary lists ${theirs.packages} packages, expected ${n}`);
  const nRepomd = wrk(`${ngx.url}/repodata/repomd.xml`);
  const nPrimary = wrk(`${ngx.url}/${theirs.href}`);
  await stop(ngx.p);
  record('rpm: GET repodata/repomd.xml req/s', wrk(`${a.url}/rpms/repodata/repomd.xml`).rps, nRepomd.rps, 'req/s', 0.3);
  record(`rpm: GET primary.xml.gz of ${n} packages (ours ${(ours.bytes / 1024).toFixed(0)} KiB, createrepo_c ${(theirs.bytes / 1024).toFixed(0)} KiB) req/s`,
    wrk(`${a.url}/rpms/${ours.href}`).rps, nPrimary.rps, 'req/s', 0.3);
  record(`rpm: peak server RSS (uploads and GETs; ${idle.toFixed(0)} MB idle before them)`, procMB(a.p.pid, 'VmHWM'), NaN, 'MB', 300, false);
  await stop(a.p);
}

try {
  writeFileSync(join(work, 'none.toml'), '');
  execFileSync('node', ['-e', `require('fs').statSync(${JSON.stringify(join(ROOT, 'dist/cli/main.js'))})`]);
  log(`work dir ${work}; wrk ${SECONDS}s; nginx worker_processes ${NGINX_WORKERS}; node ${process.version}; ${createHash('sha256').update('x').digest('hex').slice(0, 0)}`);
  if (want('small') || want('big')) await cachedGets();
  if (want('cold')) await remoteCold();
  if (want('rss')) await rss();
  if (want('rss-s3')) await rss('s3');
  if (only.includes('helm')) await helmIndex();
  if (only.includes('rpm')) await rpmBurst();
  console.log('\n| measure | artifactapi | nginx | ratio | target | ok |\n| --- | --- | --- | --- | --- | --- |');
  for (const r of results) {
    console.log(`| ${r.name} | ${fmt(r.ours, r.unit)} | ${Number.isNaN(r.nginx) ? '-' : fmt(r.nginx, r.unit)} | ${Number.isNaN(r.ratio) ? '-' : r.ratio.toFixed(2)} | ${r.target} | ${r.ok ? 'yes' : 'NO'} |`);
  }
} finally {
  for (const p of started) await stop(p);
  if (!process.env.KEEP) rmSync(work, { recursive: true, force: true });
}
