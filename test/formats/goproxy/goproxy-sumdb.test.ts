import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { startUpstream, type FakeUpstream } from '../../helpers/upstream.js';
import { which } from '../../helpers/which.js';
import { chain, downloadAndBuild, goEnv, goProxyHandler, modVersion, testSumdb, type GoEnv, type TestSumdb } from './gomod.js';

const HAS_GO = which('go');
const NAME = 'sum.test.example';

describe('goproxy checksum database through the proxy', () => {
  let server: TestServer;
  let upstream: FakeUpstream;
  let sumdb: TestSumdb;
  const envs: GoEnv[] = [];
  const { mods, app, output } = chain();
  const hello = mods.find((m) => m.path === 'example.com/hello')!;

  const sumEnv = () => goEnv(`${server.url}/go-remote`, { GOSUMDB: sumdb.verifierKey, GONOSUMDB: '' });

  beforeEach(async () => {
    sumdb = testSumdb(NAME, mods);
    upstream = await startUpstream(goProxyHandler(mods, { sumdb }));
    server = await startServer();
    await server.addRepo({ name: 'go-remote', format: 'goproxy', kind: 'remote', upstream: upstream.url });
  });

  afterEach(async () => {
    for (const e of envs.splice(0)) await e.close();
    await server.close();
    await upstream.close();
  });

  it.skipIf(!HAS_GO)('GOSUMDB verifies through the proxy (signed tree note, lookups, tiles), then from the cache with the upstream gone', async () => {
    const go = await sumEnv();
    envs.push(go);
    const first = await downloadAndBuild(go, app);
    expect(first).toMatchObject({ download: { code: 0, stderr: '' }, build: { code: 0, errors: [] }, output });
    // go asked the proxy, which asked its upstream: supported, a lookup per module, the tile.
    expect(upstream.count(`/sumdb/${NAME}/supported`)).toBe(1);
    expect(upstream.count(`/sumdb/${NAME}/lookup/example.com/hello@v1.0.0`)).toBe(1);
    expect(upstream.count(`/sumdb/${NAME}/lookup/example.com/!upper@v1.0.0`)).toBe(1);
    expect(upstream.count(`/sumdb/${NAME}/tile/8/0/000.p/${mods.length}`)).toBe(1);
    expect(await readFile(join(first.dir, 'go.sum'), 'utf8')).toContain(`example.com/hello v1.0.0 ${hello.zipHash}\n`);

    // Lookups and tiles are immutable: a fresh go gets them from the cache.
    await upstream.close();
    const again = await sumEnv();
    envs.push(again);
    expect(await downloadAndBuild(again, app)).toMatchObject({ download: { code: 0, stderr: '' }, build: { code: 0, errors: [] }, output });
  });

  it('sumdb paths: supported, latest, lookup, tile pass through; anything else 404; a local repo has no sumdb', async () => {
    await server.addRepo({ name: 'go-local', format: 'goproxy', kind: 'local' });
    const supported = await fetch(`${server.url}/go-remote/sumdb/${NAME}/supported`);
    expect(supported.status).toBe(200);
    expect(await supported.text()).toBe('');
    const lookup = await fetch(`${server.url}/go-remote/sumdb/${NAME}/lookup/example.com/hello@v1.0.0`);
    expect(lookup.status).toBe(200);
    expect(await lookup.text()).toBe(sumdb.serve('lookup/example.com/hello@v1.0.0')!.toString());
    const tile = await fetch(`${server.url}/go-remote/sumdb/${NAME}/tile/8/0/000.p/${mods.length}`);
    expect(Buffer.from(await tile.arrayBuffer()).equals(sumdb.serve(`tile/8/0/000.p/${mods.length}`)!)).toBe(true);
    const latest = await fetch(`${server.url}/go-remote/sumdb/${NAME}/latest`);
    expect(await latest.text()).toMatch(/^go\.sum database tree\n4\n/);
    expect((await fetch(`${server.url}/go-remote/sumdb/${NAME}/lookup/example.com/nothing@v1.0.0`)).status).toBe(404);
    expect((await fetch(`${server.url}/go-remote/sumdb/${NAME}/other`)).status).toBe(404);
    expect((await fetch(`${server.url}/go-remote/sumdb/${NAME}/tile/8/0/../../x`)).status).toBe(404);
    expect((await fetch(`${server.url}/go-local/sumdb/${NAME}/supported`)).status).toBe(404);
  });

  it.skipIf(!HAS_GO)('a zip whose h1: disagrees with the checksum database is refused (502) and not cached', async () => {
    const tampered = modVersion('example.com/hello', 'v1.0.0', { 'hello.go': 'package hello\n\nfunc Hello() string { return "pwned" }\n' }, { 'example.com/greet': 'v1.1.0' });
    upstream.handle(goProxyHandler(mods, { sumdb, override: { 'example.com/hello/@v/v1.0.0.zip': tampered.zip } }));
    const go = await sumEnv();
    envs.push(go);
    const dir = await go.writeApp(app);
    const r = await go.go(['mod', 'download'], dir);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('example.com/hello@v1.0.0');
    expect(r.stderr).toContain('502 Bad Gateway');
    expect(await server.svc.meta.files.get('go-remote', 'example.com/hello/@v/v1.0.0.zip')).toBeNull();
    const direct = await fetch(`${server.url}/go-remote/example.com/hello/@v/v1.0.0.zip`);
    expect(direct.status).toBe(502);
    const body = await direct.json();
    expect(body.error.code).toBe('UPSTREAM_FAILED');
    expect(body.error.message).toContain(`checksum database ${NAME} records ${hello.zipHash}`);
    // Once the upstream serves the real zip, it is fetched, checked and cached.
    upstream.handle(goProxyHandler(mods, { sumdb }));
    const fixed = await fetch(`${server.url}/go-remote/example.com/hello/@v/v1.0.0.zip`);
    expect(fixed.status).toBe(200);
    expect(Buffer.from(await fixed.arrayBuffer()).equals(hello.zip)).toBe(true);
    expect(await server.svc.meta.files.get('go-remote', 'example.com/hello/@v/v1.0.0.zip')).not.toBeNull();
  });
});
