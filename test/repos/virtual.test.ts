import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';
import { startUpstream, staticFiles, type FakeUpstream } from '../helpers/upstream.js';

let srv: TestServer | undefined;
const ups: FakeUpstream[] = [];
afterEach(async () => {
  await srv?.close();
  for (const u of ups.splice(0)) await u.close();
  srv = undefined;
});

describe('generic virtual', () => {
  it('the first member that has the path serves it, and X-Artifact-Repo names it', async () => {
    const up = await startUpstream(staticFiles({ '/both.txt': 'from-remote', '/only-remote.bin': 'R' }));
    ups.push(up);
    srv = await startServer();
    await srv.addRepo({ name: 'loc', format: 'generic', kind: 'local' });
    await srv.addRepo({ name: 'rem', format: 'generic', kind: 'remote', upstream: up.url });
    await srv.addRepo({ name: 'all', format: 'generic', kind: 'virtual', members: ['loc', 'rem'] });
    await fetch(`${srv.url}/loc/both.txt`, { method: 'PUT', body: 'from-local' });

    const both = await fetch(`${srv.url}/all/both.txt`);
    expect(await both.text()).toBe('from-local');
    expect(both.headers.get('x-artifact-repo')).toBe('loc');
    expect(both.headers.get('x-artifact-source')).toBe('local');
    expect(up.count('/both.txt')).toBe(0);

    const r = await fetch(`${srv.url}/all/only-remote.bin`);
    expect(await r.text()).toBe('R');
    expect(r.headers.get('x-artifact-repo')).toBe('rem');
    expect(r.headers.get('x-artifact-source')).toBe('remote');
    const again = await fetch(`${srv.url}/all/only-remote.bin`);
    expect(again.headers.get('x-artifact-source')).toBe('cache');
    await again.arrayBuffer();

    expect((await fetch(`${srv.url}/all/nowhere.bin`)).status).toBe(404);
    const head = await fetch(`${srv.url}/all/both.txt`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('10');
  });

  it('writes: 405 without default_local; with it, they land in that member', async () => {
    srv = await startServer();
    await srv.addRepo({ name: 'loc', format: 'generic', kind: 'local' });
    await srv.addRepo({ name: 'all', format: 'generic', kind: 'virtual', members: ['loc'] });
    await srv.addRepo({ name: 'wr', format: 'generic', kind: 'virtual', members: ['loc'], default_local: 'loc' });
    const refused = await fetch(`${srv.url}/all/x.bin`, { method: 'PUT', body: 'x' });
    expect(refused.status).toBe(405);
    expect((await refused.json()).error.code).toBe('METHOD_NOT_ALLOWED');
    const put = await fetch(`${srv.url}/wr/x.bin`, { method: 'PUT', body: 'xyz' });
    expect(put.status).toBe(201);
    expect((await put.json()).repo).toBe('loc');
    expect(await (await fetch(`${srv.url}/loc/x.bin`)).text()).toBe('xyz');
    // Remote repos refuse writes too.
    const up = await startUpstream(staticFiles({}));
    ups.push(up);
    await srv.addRepo({ name: 'rem', format: 'generic', kind: 'remote', upstream: up.url });
    expect((await fetch(`${srv.url}/rem/x.bin`, { method: 'PUT', body: 'x' })).status).toBe(405);
    expect(up.count()).toBe(0);
  });

  it('a failing member is skipped when a later one has the file; 502 when none has it and one failed', async () => {
    const broken = await startUpstream((_req, res) => void res.writeHead(500).end());
    const good = await startUpstream(staticFiles({ '/a.bin': 'good' }));
    ups.push(broken, good);
    srv = await startServer();
    await srv.addRepo({ name: 'bad', format: 'generic', kind: 'remote', upstream: broken.url });
    await srv.addRepo({ name: 'ok', format: 'generic', kind: 'remote', upstream: good.url });
    await srv.addRepo({ name: 'all', format: 'generic', kind: 'virtual', members: ['bad', 'ok'] });
    const r = await fetch(`${srv.url}/all/a.bin`);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('good');
    expect(r.headers.get('x-artifact-repo')).toBe('ok');
    const miss = await fetch(`${srv.url}/all/nope.bin`);
    expect(miss.status).toBe(502);
  });

  it('a virtual member that streams a large first fetch sends the same bytes', async () => {
    const body = randomBytes(2 * 1024 * 1024);
    const up = await startUpstream(staticFiles({ '/big.bin': body }));
    ups.push(up);
    srv = await startServer();
    await srv.addRepo({ name: 'rem', format: 'generic', kind: 'remote', upstream: up.url });
    await srv.addRepo({ name: 'all', format: 'generic', kind: 'virtual', members: ['rem'] });
    const [a, b] = await Promise.all([fetch(`${srv.url}/all/big.bin`), fetch(`${srv.url}/rem/big.bin`)]);
    expect(Buffer.from(await a.arrayBuffer()).equals(body)).toBe(true);
    expect(Buffer.from(await b.arrayBuffer()).equals(body)).toBe(true);
    expect(up.count()).toBe(1);
  });
});
