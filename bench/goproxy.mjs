#!/usr/bin/env node
/**
 * goproxy benchmark: `go mod download` of a 30-module tree
 *   - straight from a GOPROXY upstream (a static module tree served by node:http on loopback),
 *   - cold through an artifactapi goproxy remote repo over that upstream (empty cache),
 *   - warm through the same remote repo (everything cached),
 * each with a fresh module cache, REPEAT times (a fresh remote repo for every cold run); medians.
 *
 *   npx tsc -p . && node bench/goproxy.mjs [--modules 30] [--repeat 3] [--delay-ms 0]
 *
 * `--delay-ms` holds every upstream answer back that long (a far-away upstream). Needs go and zip
 * on PATH. The server runs in this process (dist/), on 127.0.0.1:0; everything stops by itself.
 */
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { opt, ROOT } from './args.mjs';
import { promisify } from 'node:util';

const MODULES = opt('modules', 30);
const REPEAT = opt('repeat', 3);
const DELAY_MS = opt('delay-ms', 0);
const exec = promisify(execFile);
const log = (...a) => console.error('[bench]', ...a);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Module i requires i+1 and i+7 (when they exist); the app requires all of them, as `go mod tidy` writes it. */
async function writeTree(dir) {
  const proxy = join(dir, 'proxy');
  const stage = join(dir, 'stage');
  const name = (i) => `bench.example/m${String(i).padStart(2, '0')}`;
  for (let i = 0; i < MODULES; i++) {
    const deps = [i + 1, i + 7].filter((j) => j < MODULES);
    const goMod = `module ${name(i)}\n\ngo 1.19\n${deps.length ? `\nrequire (\n${deps.map((j) => `\t${name(j)} v1.0.0\n`).join('')})\n` : ''}`;
    const imports = deps.map((j) => `\t"${name(j)}"\n`).join('');
    const body = deps.map((j) => ` + m${String(j).padStart(2, '0')}.F()`).join('');
    const src = `package m${String(i).padStart(2, '0')}\n\n${imports ? `import (\n${imports})\n\n` : ''}// F is part of a benchmark tree.\nfunc F() int { return 1${body} }\n`;
    const modDir = join(stage, `${name(i)}@v1.0.0`);
    await mkdir(modDir, { recursive: true });
    await writeFile(join(modDir, 'go.mod'), goMod);
    await writeFile(join(modDir, 'f.go'), src);
    // Some bulk, as real modules have (~64 KiB of Go source comments).
    await writeFile(join(modDir, 'doc.go'), `// Package doc.\npackage m${String(i).padStart(2, '0')}\n\n${'// lorem ipsum dolor sit amet, consectetur adipiscing elit\n'.repeat(1100)}`);
    const v = join(proxy, name(i), '@v');
    await mkdir(v, { recursive: true });
    await writeFile(join(v, 'list'), 'v1.0.0\n');
    await writeFile(join(v, 'v1.0.0.info'), JSON.stringify({ Version: 'v1.0.0', Time: '2024-01-01T00:00:00Z' }));
    await writeFile(join(v, 'v1.0.0.mod'), goMod);
    await exec('zip', ['-q', '-X', '-D', '-r', join(v, 'v1.0.0.zip'), `${name(i)}@v1.0.0`], { cwd: stage });
  }
  const app = join(dir, 'app');
  await mkdir(app, { recursive: true });
  await writeFile(join(app, 'go.mod'), `module bench.example/app\n\ngo 1.19\n\nrequire (\n${Array.from({ length: MODULES }, (_, i) => `\t${name(i)} v1.0.0\n`).join('')})\n`);
  await writeFile(join(app, 'main.go'), `package main\n\nimport "${name(0)}"\n\nfunc main() { println(m00.F()) }\n`);
  return { proxy, app };
}

/** A static GOPROXY over the tree: files or 404, every answer held back `DELAY_MS`. */
function serveTree(root) {
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]);
    const file = join(root, path);
    setTimeout(() => {
      if (!file.startsWith(root) || path.includes('..')) return res.writeHead(404).end();
      stat(file).then((s) => {
        if (!s.isFile()) throw new Error('not a file');
        res.writeHead(200, { 'content-length': String(s.size), 'content-type': file.endsWith('.zip') ? 'application/zip' : 'text/plain' });
        createReadStream(file).pipe(res);
      }).catch(() => res.writeHead(404, { 'content-type': 'text/plain' }).end('not found'));
    }, DELAY_MS);
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ server, url: `http://127.0.0.1:${server.address().port}`, count: () => requests })));
}

async function goDownload(scratch, label, proxy, app) {
  const home = await mkdtemp(join(scratch, `go-${label}-`));
  const env = {
    PATH: process.env.PATH, HOME: home, GOPROXY: proxy, GOFLAGS: '-mod=mod -modcacherw', GOSUMDB: 'off', GONOSUMDB: '*',
    GOPATH: join(home, 'gopath'), GOMODCACHE: join(home, 'mod'), GOCACHE: join(home, 'cache'), GOTOOLCHAIN: 'local', GOENV: 'off', GO111MODULE: 'on',
  };
  const t0 = performance.now();
  await exec('go', ['mod', 'download'], { cwd: app, env, timeout: 300_000 });
  const ms = performance.now() - t0;
  await rm(home, { recursive: true, force: true });
  return ms;
}

async function main() {
  const scratch = await mkdtemp(join(tmpdir(), 'artifactapi-bench-go-'));
  let upstream;
  let app;
  let svc;
  try {
    log(`writing a ${MODULES}-module tree`);
    const tree = await writeTree(scratch);
    upstream = await serveTree(tree.proxy);
    const { loadConfig } = await import(join(ROOT, 'dist/config/load.js'));
    const { createServices, createLogger } = await import(join(ROOT, 'dist/server/services.js'));
    const { buildApp } = await import(join(ROOT, 'dist/server/app.js'));
    const config = loadConfig({ noDefaultFile: true, env: {}, flags: { data_dir: join(scratch, 'data'), 'server.log_level': 'warn' } });
    svc = await createServices(config, createLogger(config));
    app = await buildApp(svc);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${app.server.address().port}`;
    const addRepo = async (name) => {
      const r = await fetch(`${base}/api/v1/repositories`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, format: 'goproxy', kind: 'remote', upstream: upstream.url }) });
      if (r.status !== 201) throw new Error(`add repo: ${r.status} ${await r.text()}`);
    };
    const direct = [];
    const cold = [];
    const warm = [];
    for (let i = 0; i < REPEAT; i++) {
      direct.push(await goDownload(scratch, 'direct', upstream.url, tree.app));
      await addRepo(`go-${i}`);
      const before = upstream.count();
      cold.push(await goDownload(scratch, 'cold', `${base}/go-${i}`, tree.app));
      const upstreamRequests = upstream.count() - before;
      warm.push(await goDownload(scratch, 'warm', `${base}/go-${i}`, tree.app));
      log(`run ${i + 1}: direct ${direct[i].toFixed(0)} ms, cold ${cold[i].toFixed(0)} ms (${upstreamRequests} upstream requests), warm ${warm[i].toFixed(0)} ms`);
    }
    const d = median(direct);
    const c = median(cold);
    const w = median(warm);
    console.log(JSON.stringify({
      when: new Date().toISOString(), node: process.version, modules: MODULES, repeat: REPEAT, upstream_delay_ms: DELAY_MS,
      median_ms: { direct: Math.round(d), cold_through_remote: Math.round(c), warm_through_remote: Math.round(w) },
      ratio: { cold_vs_direct: Number((c / d).toFixed(2)), warm_vs_direct: Number((w / d).toFixed(2)), warm_vs_cold: Number((w / c).toFixed(2)) },
    }, null, 2));
  } finally {
    await app?.close();
    await svc?.close();
    upstream?.server.closeAllConnections();
    upstream?.server.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
