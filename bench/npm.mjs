#!/usr/bin/env node
/**
 * npm benchmark: artifactapi against Verdaccio 6.8.0 serving the same package.
 *
 *   npx tsc -p . && node bench/npm.mjs [--duration 10] [--connections 50] [--tree 50] [--verdaccio DIR]
 *
 * 1. req/s of packument (abbreviated and full) and tarball GETs, artifactapi local repo vs
 *    Verdaccio, same package (same publish body PUT to both), measured with wrk (or a node
 *    loop when wrk is absent), one after the other, each for --duration seconds.
 * 2. cold and warm `npm install` of a --tree package tree through an artifactapi remote repo
 *    whose upstream is that Verdaccio, against installing straight from Verdaccio.
 *
 * Verdaccio is installed (once) into a scratch dir outside the repo (--verdaccio, default
 * $VERDACCIO_DIR or /tmp/verdaccio-bench) with the node-fetch override it needs on this registry.
 * Everything started here is stopped at the end; the run is bounded by its durations.
 */
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const DURATION = Number(opt('duration', '10'));
const CONNECTIONS = Number(opt('connections', '50'));
const TREE = Number(opt('tree', '50'));
const VERDACCIO_DIR = resolve(opt('verdaccio', process.env.VERDACCIO_DIR ?? '/tmp/verdaccio-bench'));
const ABBREV = 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*';

const children = [];
const log = (...a) => console.error('[bench]', ...a);

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

function start(cmd, argv, o = {}) {
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...o });
  let out = '';
  child.stdout.on('data', (d) => (out = (out + d).slice(-4000)));
  child.stderr.on('data', (d) => (out = (out + d).slice(-4000)));
  child.tail = () => out;
  children.push(child);
  return child;
}

async function waitFor(url, child, ms = 60_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`${url}: process exited:\n${child.tail()}`);
    try {
      const r = await fetch(url);
      if (r.status < 500) return;
    } catch { /* gone already */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not come up:\n${child.tail()}`);
}

function run(cmd, argv, o = {}) {
  return new Promise((res, rej) => {
    const c = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...o });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('error', rej);
    c.on('close', (code) => (code === 0 ? res(out) : rej(new Error(`${cmd} ${argv.join(' ')} exited ${code}\n${err.slice(-3000)}`))));
  });
}

async function ensureVerdaccio() {
  const bin = join(VERDACCIO_DIR, 'node_modules/verdaccio/bin/verdaccio');
  if (existsSync(bin)) return bin;
  log(`installing verdaccio 6.8.0 into ${VERDACCIO_DIR}`);
  await mkdir(VERDACCIO_DIR, { recursive: true });
  await writeFile(join(VERDACCIO_DIR, 'package.json'), JSON.stringify({
    name: 'verdaccio-bench', private: true, dependencies: { verdaccio: '6.8.0' }, overrides: { 'node-fetch': '2.7.0' },
  }));
  await run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=warn'], { cwd: VERDACCIO_DIR });
  return bin;
}

/** A package dir with some content, packed with the real npm client. */
async function packPackage(dir, pkg, bytes = 0) {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'package.json'), JSON.stringify({ main: 'index.js', license: 'MIT', ...pkg }, null, 2));
  await writeFile(join(dir, 'index.js'), `module.exports = ${JSON.stringify(`${pkg.name}@${pkg.version}`)};\n`);
  if (bytes) await writeFile(join(dir, 'data.bin'), randomBytes(bytes));
  const out = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: dir });
  const file = JSON.parse(out)[0].filename;
  return { pkg, file, data: await readFile(join(dir, file)) };
}

/** The publish body libnpmpublish sends. */
function publishBody(registry, p) {
  const { name, version } = p.pkg;
  return JSON.stringify({
    _id: name, name, description: p.pkg.description, 'dist-tags': { latest: version }, access: 'public',
    versions: { [version]: { ...p.pkg, _id: `${name}@${version}`, readme: `# ${name}\n\n${'lorem ipsum '.repeat(80)}`, dist: {
      integrity: `sha512-${createHash('sha512').update(p.data).digest('base64')}`,
      shasum: createHash('sha1').update(p.data).digest('hex'),
      tarball: `${registry}${name}/-/${p.file}`,
    } } },
    _attachments: { [`${name}-${version}.tgz`]: { content_type: 'application/octet-stream', data: p.data.toString('base64'), length: p.data.length } },
  });
}

async function publish(registry, p) {
  const r = await fetch(`${registry}${p.pkg.name.replace('/', '%2f')}`, {
    method: 'PUT', body: publishBody(registry, p), headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
  });
  if (r.status >= 300) throw new Error(`publish ${p.pkg.name}@${p.pkg.version} to ${registry}: ${r.status} ${await r.text()}`);
}

let TOKEN = 'bench';

function haveWrk() {
  try {
    execFileSync('sh', ['-c', 'command -v wrk'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** req/s for GET url with headers; checks every answer is 200. */
async function load(url, headers = {}) {
  // Warm up (first request fills caches on both sides).
  for (let i = 0; i < 20; i++) {
    const r = await fetch(url, { headers });
    if (r.status !== 200) throw new Error(`${url}: ${r.status}`);
    await r.arrayBuffer();
  }
  if (haveWrk()) {
    const hargs = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
    const out = await run('wrk', ['-t', '1', '-c', String(CONNECTIONS), '-d', `${DURATION}s`, ...hargs, url]);
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
    const bad = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
    const errs = /Socket errors:.*/.exec(out);
    return { rps, bad: bad ? Number(bad[1]) : 0, note: errs ? errs[0] : '' };
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const until = Date.now() + DURATION * 1000;
  let n = 0;
  let bad = 0;
  const one = () => new Promise((res) => {
    http.get(url, { agent, headers }, (r) => {
      if (r.statusCode !== 200) bad++;
      r.resume();
      r.on('end', res);
    }).on('error', () => { bad++; res(); });
  });
  const t0 = Date.now();
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    while (Date.now() < until) {
      await one();
      n++;
    }
  }));
  agent.destroy();
  return { rps: (n * 1000) / (Date.now() - t0), bad, note: 'node loop' };
}

async function timeInstall(scratch, label, registry, pkg) {
  const d = join(scratch, 'installs', label);
  await mkdir(d, { recursive: true });
  await writeFile(join(d, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
  const rc = join(d, '.npmrc-bench');
  await writeFile(rc, `registry=${registry}\naudit=false\nfund=false\nupdate-notifier=false\n`);
  const t0 = process.hrtime.bigint();
  await run('npm', ['install', pkg, '--userconfig', rc, '--cache', join(d, '.cache'), '--registry', registry, '--no-audit', '--no-fund', '--loglevel=warn'], {
    cwd: d, env: { ...process.env, npm_config_globalconfig: join(d, 'none') },
  });
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function main() {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) throw new Error('build first: npx tsc -p .');
  const vbin = await ensureVerdaccio();
  const scratch = await mkdtemp(join(tmpdir(), 'npm-bench-'));
  try {
    // Verdaccio
    const vport = await freePort();
    const vdir = join(scratch, 'verdaccio');
    await mkdir(vdir, { recursive: true });
    await writeFile(join(vdir, 'config.yaml'), [
      `storage: ${join(vdir, 'storage')}`,
      'auth:', '  htpasswd:', `    file: ${join(vdir, 'htpasswd')}`, '    max_users: 1000',
      'uplinks: {}',
      'packages:', "  '**':", '    access: $all', '    publish: $authenticated', '    unpublish: $authenticated',
      'log: { type: stdout, format: pretty, level: error }',
      'server:', '  keepAliveTimeout: 60',
      '',
    ].join('\n'));
    const verd = start(process.execPath, [vbin, '-c', join(vdir, 'config.yaml'), '-l', `127.0.0.1:${vport}`], { cwd: vdir });
    const vurl = `http://127.0.0.1:${vport}/`;
    await waitFor(`${vurl}-/ping`, verd);
    const user = await fetch(`${vurl}-/user/org.couchdb.user:bench`, {
      method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bench', password: 'bench-pass-123' }),
    });
    TOKEN = (await user.json()).token ?? TOKEN;

    // artifactapi
    const aport = await freePort();
    const api = start(process.execPath, [join(ROOT, 'bin/artifactapi'), 'serve', '--host', '127.0.0.1', '--port', String(aport), '--data-dir', join(scratch, 'data')], {
      env: { ...process.env, ARTIFACTAPI_SERVER_LOG_LEVEL: 'warn', ARTIFACTAPI_AUTH_ANONYMOUS: 'admin' },
    });
    const aurl = `http://127.0.0.1:${aport}`;
    await waitFor(`${aurl}/health`, api);
    const addRepo = async (body) => {
      const r = await fetch(`${aurl}/api/v1/repositories`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      if (r.status !== 201) throw new Error(`add repo: ${r.status} ${await r.text()}`);
    };
    await addRepo({ name: 'npm-local', format: 'npm', kind: 'local' });
    await addRepo({ name: 'npm-proxy', format: 'npm', kind: 'remote', upstream: vurl });

    // The same package, 20 versions, ~16 KiB tarballs, published to both.
    log('packing and publishing bench-pkg (20 versions) to both');
    const versions = [];
    for (let i = 0; i < 20; i++) versions.push(await packPackage(join(scratch, 'pkg', `v${i}`), { name: 'bench-pkg', version: `1.${i}.0`, description: 'benchmark package', dependencies: { 'left-pad': '^1.3.0' } }, 16 * 1024));
    for (const p of versions) {
      await publish(vurl, p);
      await publish(`${aurl}/npm-local/`, p);
    }
    const last = versions[versions.length - 1];
    const targets = [
      ['packument (abbreviated)', 'bench-pkg', { accept: ABBREV }],
      ['packument (full)', 'bench-pkg', { accept: 'application/json' }],
      ['tarball', `bench-pkg/-/${last.file}`, {}],
    ];
    const results = [];
    for (const [label, path, headers] of targets) {
      const v = await load(`${vurl}${path}`, headers);
      const a = await load(`${aurl}/npm-local/${path}`, headers);
      results.push({ label, verdaccio: v, artifactapi: a });
      log(`${label}: verdaccio ${v.rps.toFixed(0)} req/s, artifactapi ${a.rps.toFixed(0)} req/s (${(a.rps / v.rps).toFixed(1)}x)`);
    }

    // A 50-package tree published to Verdaccio; installed straight and through the proxy.
    let tree = null;
    if (TREE > 1) {
      log(`packing and publishing a ${TREE}-package tree to verdaccio`);
      const names = Array.from({ length: TREE - 1 }, (_, i) => `tree-dep-${i}`);
      for (let i = 0; i < names.length; i++) {
        const deps = {};
        for (const j of [i + 1, i + 7]) if (j < names.length) deps[names[j]] = '^1.0.0';
        await publish(vurl, await packPackage(join(scratch, 'tree', names[i]), { name: names[i], version: '1.0.0', dependencies: deps }, 4096));
      }
      await publish(vurl, await packPackage(join(scratch, 'tree', 'root'), { name: 'tree-root', version: '1.0.0', dependencies: Object.fromEntries(names.map((n) => [n, '^1.0.0'])) }, 4096));
      const direct = await timeInstall(scratch, 'direct', vurl, 'tree-root');
      const cold = await timeInstall(scratch, 'cold', `${aurl}/npm-proxy/`, 'tree-root');
      const warm = await timeInstall(scratch, 'warm', `${aurl}/npm-proxy/`, 'tree-root');
      tree = { packages: TREE, directMs: Math.round(direct), coldProxyMs: Math.round(cold), warmProxyMs: Math.round(warm) };
      log(`npm install of ${TREE} packages: straight from verdaccio ${tree.directMs} ms, through the proxy cold ${tree.coldProxyMs} ms, warm ${tree.warmProxyMs} ms`);
    }

    const report = {
      when: new Date().toISOString(), node: process.version, duration_s: DURATION, connections: CONNECTIONS, tool: haveWrk() ? 'wrk -t1' : 'node loop',
      tarball_bytes: last.data.length,
      reqs: results.map((r) => ({ what: r.label, verdaccio_rps: Math.round(r.verdaccio.rps), artifactapi_rps: Math.round(r.artifactapi.rps),
        ratio: Number((r.artifactapi.rps / r.verdaccio.rps).toFixed(2)), non2xx: { verdaccio: r.verdaccio.bad, artifactapi: r.artifactapi.bad } })),
      install: tree,
    };
    console.log(JSON.stringify(report, null, 2));
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await rm(scratch, { recursive: true, force: true });
  }
}

main().catch((err) => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  console.error(err);
  process.exit(1);
});
