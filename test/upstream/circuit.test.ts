import { afterEach, describe, expect, it } from 'vitest';
import { startServer, SUITE_TOKEN, type TestServer } from '../helpers/server.js';
import { startUpstream, type FakeUpstream } from '../helpers/upstream.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let srv: TestServer | undefined;
let up: FakeUpstream | undefined;
afterEach(async () => {
  await srv?.close();
  await up?.close();
});

describe('upstream circuit (max_fails / fail_timeout)', () => {
  it('after max_fails consecutive failures the upstream is skipped for fail_timeout, then tried again', async () => {
    let healthy = false;
    up = await startUpstream((_req, res) => {
      if (!healthy) return void res.writeHead(503).end();
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end('ok');
    });
    srv = await startServer({ 'remote.max_fails': 3, 'remote.fail_timeout': '600ms' });
    await srv.addRepo({ name: 'rem', format: 'generic', kind: 'remote', upstream: up.url });
    for (let i = 0; i < 3; i++) expect((await fetch(`${srv.url}/rem/f${i}.bin`)).status).toBe(502);
    expect(up.count()).toBe(3);
    // Open: answered without asking the upstream.
    healthy = true;
    const t0 = Date.now();
    expect((await fetch(`${srv.url}/rem/x.bin`)).status).toBe(502);
    expect(Date.now() - t0).toBeLessThan(200);
    expect(up.count()).toBe(3);
    await sleep(700);
    const r = await fetch(`${srv.url}/rem/x.bin`);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('ok');
    expect(up.count()).toBe(4);
  });

  it('sends a Via header and the configured user agent, never the client credentials', async () => {
    let seen: Record<string, unknown> = {};
    up = await startUpstream((req, res) => {
      seen = req.headers;
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end('x');
    });
    srv = await startServer();
    await srv.addRepo({ name: 'rem', format: 'generic', kind: 'remote', upstream: up.url });
    await (await fetch(`${srv.url}/rem/a.bin`, { headers: { authorization: `Bearer ${SUITE_TOKEN}`, cookie: 'c=1' } })).text();
    expect(String(seen.via)).toContain('artifactapi');
    expect(seen.authorization).toBeUndefined(); // a valid credential of ours, still never forwarded
    expect(seen.cookie).toBeUndefined();
  });
});
