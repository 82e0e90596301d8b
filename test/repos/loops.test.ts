import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SELF_HOP } from '../../src/upstream/hops.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { startUpstream, type FakeUpstream } from '../helpers/upstream.js';

const post = (srv: TestServer, body: Record<string, unknown>) =>
  fetch(`${srv.url}/api/v1/repositories`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: srv.adminAuth }, body: JSON.stringify(body) });

describe('remote repos never recurse into themselves', () => {
  let a: TestServer;
  let b: TestServer;
  let seen: FakeUpstream;
  const vias: string[] = [];

  beforeAll(async () => {
    [a, b] = await Promise.all([startServer(), startServer()]);
    seen = await startUpstream((req, res) => {
      vias.push(String(req.headers.via));
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await seen?.close();
  });

  it('refuses to create or update a remote whose upstream is this server (400)', async () => {
    for (const upstream of [`${a.url}/other/`, `http://localhost:${a.port}/x`, `http://[::1]:${a.port}/`]) {
      for (const format of ['generic', 'npm', 'pypi', 'docker']) {
        const r = await post(a, { name: `self-${format}`, format, kind: 'remote', upstream });
        expect(r.status, `${format} ${upstream}`).toBe(400);
        expect(await r.json()).toEqual({ error: { code: 'BAD_REQUEST', message: expect.stringMatching(/this server/) } });
      }
    }
    expect((await fetch(`${a.url}/api/v1/repositories/self-generic`)).status).toBe(404);
    await a.addRepo({ name: 'elsewhere', format: 'generic', kind: 'remote', upstream: `${b.url}/x/` });
    const upd = await fetch(`${a.url}/api/v1/repositories/elsewhere`, {
      method: 'PUT', headers: { 'content-type': 'application/json', authorization: a.adminAuth },
      body: JSON.stringify({ format: 'generic', kind: 'remote', upstream: `${a.url}/elsewhere/` }),
    });
    expect(upd.status).toBe(400);
    expect((await (await fetch(`${a.url}/api/v1/repositories/elsewhere`)).json()).upstream).toBe(`${b.url}/x/`);
  });

  it('a loop through two servers ends at once with an error, thanks to the Via hops', async () => {
    await a.addRepo({ name: 'ra', format: 'generic', kind: 'remote', upstream: `${b.url}/rb/` });
    await b.addRepo({ name: 'rb', format: 'generic', kind: 'remote', upstream: `${a.url}/ra/` });
    const t0 = Date.now();
    const r = await fetch(`${a.url}/ra/some/file.bin`);
    expect(r.status).toBe(502);
    expect(await r.json()).toEqual({ error: { code: 'UPSTREAM_FAILED', message: expect.any(String) } });
    expect(Date.now() - t0).toBeLessThan(3000);
    // Nothing was cached on either side.
    expect(await a.svc.meta.files.get('ra', 'some/file.bin')).toBeNull();
    expect(await b.svc.meta.files.get('rb', 'some/file.bin')).toBeNull();
  });

  it('refuses a request that already passed through this server, or through too many artifactapi servers (508)', async () => {
    const own = await fetch(`${a.url}/elsewhere/x`, { headers: { via: `1.1 proxy, ${SELF_HOP}` } });
    expect(own.status).toBe(508);
    expect(await own.json()).toEqual({ error: { code: 'LOOP_DETECTED', message: expect.any(String) } });
    const chain = Array.from({ length: 8 }, (_, i) => `1.1 artifactapi-${i}`).join(', ');
    expect((await fetch(`${a.url}/health`, { headers: { via: chain } })).status).toBe(508);
    expect((await fetch(`${a.url}/health`, { headers: { via: '1.1 artifactapi-elsewhere' } })).status).toBe(200);
  });

  it('forwards the hops a request came with to the upstream, then its own', async () => {
    await a.addRepo({ name: 'seen', format: 'generic', kind: 'remote', upstream: seen.url });
    expect((await fetch(`${a.url}/seen/one`, { headers: { via: '1.1 corp-proxy' } })).status).toBe(200);
    expect((await fetch(`${a.url}/seen/two`)).status).toBe(200);
    expect(vias).toEqual([`1.1 corp-proxy, ${SELF_HOP}`, SELF_HOP]);
  });
});
