import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { startUpstream, type FakeUpstream } from '../../helpers/upstream.js';
import { which } from '../../helpers/which.js';
import { chain, downloadAndBuild, goEnv, goProxyHandler, type GoEnv } from './gomod.js';

const HAS_GO = which('go');

describe('goproxy remote', () => {
  let server: TestServer;
  let upstream: FakeUpstream;
  let failing: FakeUpstream;
  let empty: FakeUpstream;
  const envs: GoEnv[] = [];
  const { mods, app, output } = chain();

  beforeEach(async () => {
    upstream = await startUpstream(goProxyHandler(mods, { gone: ['example.com/gone'] }));
    empty = await startUpstream((_req, res) => { res.writeHead(404).end('not found'); });
    failing = await startUpstream((_req, res) => { res.writeHead(500).end('boom'); });
    server = await startServer();
    await server.addRepo({ name: 'go-remote', format: 'goproxy', kind: 'remote', upstream: upstream.url, metadata_ttl: '1s' });
    await server.addRepo({ name: 'go-empty', format: 'goproxy', kind: 'remote', upstream: `${empty.url}/` });
    await server.addRepo({ name: 'go-failing', format: 'goproxy', kind: 'remote', upstream: failing.url });
  });

  afterEach(async () => {
    for (const e of envs.splice(0)) await e.close();
    await server.close();
    await upstream.close();
    await empty.close();
    await failing.close();
  });

  it.skipIf(!HAS_GO)('go mod download and go build a dependency chain through the remote, then from the cache with the upstream gone', async () => {
    const go = await goEnv(`${server.url}/go-remote`);
    envs.push(go);
    expect(await downloadAndBuild(go, app)).toMatchObject({ download: { code: 0, stderr: '' }, build: { code: 0, errors: [] }, output });
    // go asked for the case-encoded module as %21upper; it came from the upstream once.
    expect(upstream.count('/example.com/!upper/@v/v1.0.0.zip')).toBe(1);
    expect(upstream.count('/example.com/hello/@v/v1.0.0.zip')).toBe(1);

    await upstream.close();
    const again = await goEnv(`${server.url}/go-remote`);
    envs.push(again);
    expect(await downloadAndBuild(again, app)).toMatchObject({ download: { code: 0, stderr: '' }, build: { code: 0, errors: [] }, output });
  });

  it.skipIf(!HAS_GO)('GOPROXY=A,B: a remote whose upstream says 404 passes go on to B; one whose upstream fails stops go', async () => {
    const go = await goEnv(`${server.url}/go-empty,${server.url}/go-remote`);
    envs.push(go);
    expect(await downloadAndBuild(go, app)).toMatchObject({ download: { code: 0, stderr: '' }, build: { code: 0, errors: [] }, output });
    expect(empty.count('/example.com/hello/@v/v1.0.0.mod')).toBe(1);

    const stopped = await goEnv(`${server.url}/go-failing,${server.url}/go-remote`);
    envs.push(stopped);
    const dir2 = await stopped.writeApp(app);
    const before = upstream.count('/example.com/hello/');
    const r = await stopped.go(['mod', 'download'], dir2);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('502 Bad Gateway');
    expect(failing.count('/example.com/hello/@v/v1.0.0.mod')).toBe(1);
    expect(upstream.count('/example.com/hello/')).toBe(before);
  });

  it('serves list, info, mod, zip and @latest with exact bodies; immutable files once, list with the TTL and stale when the upstream is down', async () => {
    const base = `${server.url}/go-remote/example.com/greet/@v`;
    const list = await fetch(`${base}/list`);
    expect(list.status).toBe(200);
    expect(list.headers.get('x-artifact-source')).toBe('remote');
    expect(await list.text()).toBe('v1.0.0\nv1.1.0\n');

    const greet1 = mods.find((m) => m.path === 'example.com/greet' && m.version === 'v1.1.0')!;
    const info = await fetch(`${base}/v1.1.0.info`);
    expect(info.status).toBe(200);
    expect(info.headers.get('content-type')).toBe('application/json');
    expect(await info.text()).toBe(greet1.info);
    const mod = await fetch(`${base}/v1.1.0.mod`);
    expect(await mod.text()).toBe(greet1.goMod);
    const zips = await Promise.all(Array.from({ length: 5 }, () => fetch(`${base}/v1.1.0.zip`).then(async (r) => ({ r, b: Buffer.from(await r.arrayBuffer()) }))));
    for (const { r, b } of zips) {
      expect(r.status).toBe(200);
      expect(b.equals(greet1.zip)).toBe(true);
    }
    expect(upstream.count('/example.com/greet/@v/v1.1.0.zip')).toBe(1);
    const cached = await fetch(`${base}/v1.1.0.zip`);
    expect(cached.headers.get('x-artifact-source')).toBe('cache');
    expect(cached.headers.get('content-length')).toBe(String(greet1.zip.length));
    await cached.arrayBuffer();

    const latest = await fetch(`${server.url}/go-remote/example.com/greet/@latest`);
    expect(latest.status).toBe(200);
    expect(await latest.json()).toEqual({ Version: 'v1.1.0', Time: greet1.time });

    // Within the TTL the list is not asked again; past it, it is revalidated; the upstream down, the stale copy serves.
    expect(upstream.count('/example.com/greet/@v/list')).toBe(1);
    await new Promise((r) => setTimeout(r, 1200));
    upstream.handle((_req, res) => { res.writeHead(503).end('down'); });
    const stale = await fetch(`${base}/list`);
    expect(stale.status).toBe(200);
    expect(stale.headers.get('x-artifact-stale')).toBe('true');
    expect(await stale.text()).toBe('v1.0.0\nv1.1.0\n');
    expect(upstream.count('/example.com/greet/@v/list')).toBe(2);
    // Immutable files are never asked again.
    const info2 = await fetch(`${base}/v1.1.0.info`);
    expect(info2.headers.get('x-artifact-source')).toBe('cache');
    expect(await info2.text()).toBe(greet1.info);
  });

  it('case-encoding, 404/410 and bad paths', async () => {
    const upper = mods.find((m) => m.path === 'example.com/Upper')!;
    const enc = await fetch(`${server.url}/go-remote/example.com/%21upper/@v/v1.0.0.mod`);
    expect(enc.status).toBe(200);
    expect(await enc.text()).toBe(upper.goMod);
    // Upper case in a URL is not how go asks: 404, never sent upstream.
    const raw = await fetch(`${server.url}/go-remote/example.com/Upper/@v/v1.0.0.mod`);
    expect(raw.status).toBe(404);
    expect(upstream.count('/example.com/Upper/')).toBe(0);

    const missing = await fetch(`${server.url}/go-remote/example.com/nothing/@v/list`);
    expect(missing.status).toBe(404);
    expect((await missing.json()).error.code).toBe('NOT_FOUND');
    const gone = await fetch(`${server.url}/go-remote/example.com/gone/@v/v1.0.0.info`);
    expect(gone.status).toBe(404);
    const noVersion = await fetch(`${server.url}/go-remote/example.com/greet/@v/v9.9.9.zip`);
    expect(noVersion.status).toBe(404);

    const failing = await fetch(`${server.url}/go-failing/example.com/greet/@v/v1.1.0.zip`);
    expect(failing.status).toBe(502);
    expect((await failing.json()).error.code).toBe('UPSTREAM_FAILED');

    const traversal = await fetch(`${server.url}/go-remote/example.com/%252e%252e/x/@v/list`);
    expect(traversal.status).toBe(400);
    const notAModule = await fetch(`${server.url}/go-remote/nodot/@v/list`);
    expect(notAModule.status).toBe(404);

    const put = await fetch(`${server.url}/go-remote/example.com/x/@v/v1.0.0.zip`, { method: 'PUT', body: 'x' });
    expect(put.status).toBe(405);
  });
});
