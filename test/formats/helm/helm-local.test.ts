import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { chartTgz, cmPush, getIndex, HELM_HEADERS, helmPull, sha256hex } from './charts.js';

let srv: TestServer;
let repoUrl: string;

beforeAll(async () => {
  srv = await startServer();
  await srv.addRepo({ name: 'hl', format: 'helm', kind: 'local' });
  repoUrl = `${srv.url}/hl`;
});
afterAll(async () => srv?.close());

const chart = (name: string, version: string, extra: Record<string, unknown> = {}) =>
  ({ apiVersion: 'v2', name, version, description: `${name} chart`, appVersion: '1.2.3', type: 'application', ...extra });

async function rowCount(repo: string): Promise<number> {
  let n = 0;
  for await (const _ of srv.svc.meta.files.list(repo)) n++;
  return n;
}

describe('helm local repo', () => {
  it('a format this build does not know is refused by name', async () => {
    const res = await fetch(`${srv.url}/api/v1/repositories`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: srv.adminAuth }, body: JSON.stringify({ name: 'r1', format: 'maven', kind: 'local' }) });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toBe('unknown format "maven" (one of: generic, docker, helm, pypi, npm, rpm, alpine, puppet, terraform, goproxy)');
  });

  it('an empty repo serves an empty index with the ChartMuseum context path (helm repo add)', async () => {
    await srv.addRepo({ name: 'hl-empty', format: 'helm', kind: 'local' });
    const { res, doc } = await getIndex(`${srv.url}/hl-empty`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/yaml/);
    expect(res.headers.get('x-artifact-source')).toBe('local');
    expect(doc).toEqual({ apiVersion: 'v1', entries: {}, generated: '1970-01-01T00:00:00.000Z', serverInfo: { contextPath: '/hl-empty' } });
  });

  it('helm cm-push stores a chart and index.yaml lists it with digest, created, relative url and Chart.yaml fields; helm pull gets the same bytes', async () => {
    const deps = [{ name: 'redis', version: '17.x', repository: 'https://charts.example.com' }];
    const tgz = await chartTgz(chart('web', '0.1.0', {
      keywords: ['http'], maintainers: [{ name: 'ops', email: 'ops@example.com' }], icon: 'https://example.com/i.png',
      annotations: { category: 'Web' }, kubeVersion: '>=1.22.0', dependencies: deps, home: 'https://example.com',
    }));
    const res = await cmPush(srv.url, repoUrl, 'web-0.1.0.tgz', tgz);
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ saved: true, name: 'web', version: '0.1.0', digest: sha256hex(tgz) });

    const { doc } = await getIndex(repoUrl);
    const [entry] = doc.entries.web;
    expect(entry).toEqual({
      apiVersion: 'v2', name: 'web', version: '0.1.0', description: 'web chart', appVersion: '1.2.3', type: 'application',
      keywords: ['http'], maintainers: [{ name: 'ops', email: 'ops@example.com' }], icon: 'https://example.com/i.png',
      annotations: { category: 'Web' }, kubeVersion: '>=1.22.0', dependencies: deps, home: 'https://example.com',
      created: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), digest: sha256hex(tgz), urls: ['web-0.1.0.tgz'],
    });
    expect(doc.generated).toBe(entry.created);

    const pulled = await helmPull(repoUrl, doc, 'web', '0.1.0');
    expect(pulled.url).toBe(`${repoUrl}/web-0.1.0.tgz`);
    expect(pulled.res.status).toBe(200);
    expect(pulled.res.headers.get('x-artifact-source')).toBe('local');
    expect(sha256hex(pulled.body)).toBe(sha256hex(tgz));
  });

  it('index.yaml keeps its bytes and ETag between writes (helm repo update gets 304 with If-None-Match)', async () => {
    const a = await getIndex(repoUrl);
    const b = await getIndex(repoUrl);
    expect(b.text).toBe(a.text);
    const etag = a.res.headers.get('etag')!;
    expect(etag).toMatch(/^"[0-9a-f]{64}"$/);
    expect(b.res.headers.get('etag')).toBe(etag);
    const again = await fetch(`${repoUrl}/index.yaml`, { headers: { ...HELM_HEADERS, 'if-none-match': etag } });
    expect(again.status).toBe(304);
    const tgz = await chartTgz(chart('web', '0.2.0'));
    expect((await cmPush(srv.url, repoUrl, 'web-0.2.0.tgz', tgz)).status).toBe(201);
    const changed = await fetch(`${repoUrl}/index.yaml`, { headers: { ...HELM_HEADERS, 'if-none-match': etag } });
    expect(changed.status).toBe(200);
  });

  it('the same version twice is 409 unless ?force; force replaces the package', async () => {
    const v1 = await chartTgz(chart('dup', '1.0.0'));
    const v1b = await chartTgz(chart('dup', '1.0.0', { description: 'rebuilt' }));
    expect((await cmPush(srv.url, repoUrl, 'dup-1.0.0.tgz', v1)).status).toBe(201);
    const again = await cmPush(srv.url, repoUrl, 'dup-1.0.0.tgz', v1b);
    expect(again.status).toBe(409);
    expect((await getIndex(repoUrl)).doc.entries.dup[0].digest).toBe(sha256hex(v1));
    expect((await cmPush(srv.url, repoUrl, 'dup-1.0.0.tgz', v1b, true)).status).toBe(201);
    const entry = (await getIndex(repoUrl)).doc.entries.dup[0];
    expect(entry.digest).toBe(sha256hex(v1b));
    expect(entry.description).toBe('rebuilt');
  });

  it('PUT /REPO/<name>-<version>.tgz stores a raw package; a name that contradicts Chart.yaml is 400', async () => {
    const tgz = await chartTgz(chart('raw', '2.0.0'));
    const put = await fetch(`${repoUrl}/raw-2.0.0.tgz`, { method: 'PUT', body: new Uint8Array(tgz) });
    expect(put.status).toBe(201);
    expect((await getIndex(repoUrl)).doc.entries.raw.map((e: { version: string }) => e.version)).toEqual(['2.0.0']);
    const wrong = await fetch(`${repoUrl}/raw-3.0.0.tgz`, { method: 'PUT', body: new Uint8Array(tgz) });
    expect(wrong.status).toBe(400);
    expect((await wrong.json()).error.code).toBe('BAD_REQUEST');
    expect(await srv.svc.meta.files.get('hl', 'raw-3.0.0.tgz')).toBeNull();
  });

  it('refuses what is not a valid chart with 400 and changes nothing', async () => {
    const before = await getIndex(repoUrl);
    const rows = await rowCount('hl');
    const bad: [string, Buffer][] = [
      ['not gzip', Buffer.from('hello, not a chart')],
      ['no top-level Chart.yaml', await chartTgz(chart('x', '1.0.0'), { dir: 'x/sub' })],
      ['bad version', await chartTgz(chart('x', 'one'))],
      ['v-prefixed version', await chartTgz(chart('x', 'v1.0.0'))],
      ['bad apiVersion', await chartTgz(chart('x', '1.0.0', { apiVersion: 'v3' }))],
      ['bad name', await chartTgz(chart('x y', '1.0.0'), { dir: 'xy' })],
      ['bad type', await chartTgz(chart('x', '1.0.0', { type: 'plugin' }))],
    ];
    for (const [what, tgz] of bad) {
      const res = await cmPush(srv.url, repoUrl, 'x.tgz', tgz);
      expect(res.status, what).toBe(400);
      expect((await res.json()).error.code, what).toBe('BAD_REQUEST');
    }
    expect(await rowCount('hl')).toBe(rows);
    expect((await getIndex(repoUrl)).text).toBe(before.text);
  });

  it('lists versions newest first by SemVer', async () => {
    for (const v of ['0.1.0', '0.10.0', '0.2.0', '1.0.0-rc.1', '1.0.0']) {
      expect((await cmPush(srv.url, repoUrl, `order-${v}.tgz`, await chartTgz(chart('order', v)))).status).toBe(201);
    }
    expect((await getIndex(repoUrl)).doc.entries.order.map((e: { version: string }) => e.version)).toEqual(['1.0.0', '1.0.0-rc.1', '0.10.0', '0.2.0', '0.1.0']);
  });

  it('a burst of concurrent pushes ends with every chart in the index', async () => {
    const versions = Array.from({ length: 16 }, (_, i) => `3.${i}.0`);
    const results = await Promise.all(versions.map(async (v) => (await cmPush(srv.url, repoUrl, `burst-${v}.tgz`, await chartTgz(chart('burst', v)))).status));
    expect(results).toEqual(versions.map(() => 201));
    const listed = (await getIndex(repoUrl)).doc.entries.burst.map((e: { version: string }) => e.version).sort();
    expect(listed).toEqual([...versions].sort());
  });

  it('ChartMuseum API: list, one chart, one version, latest, delete', async () => {
    const all = await (await fetch(`${repoUrl}/api/charts`)).json();
    expect(Object.keys(all)).toEqual(expect.arrayContaining(['web', 'dup', 'raw', 'order']));
    const web = await (await fetch(`${repoUrl}/api/charts/web`)).json();
    expect(web.map((e: { version: string }) => e.version)).toEqual(['0.2.0', '0.1.0']);
    expect(web[0].urls).toEqual([`${repoUrl}/web-0.2.0.tgz`]);
    expect((await (await fetch(`${repoUrl}/api/charts/web/0.1.0`)).json()).version).toBe('0.1.0');
    expect((await (await fetch(`${repoUrl}/api/charts/web/latest`)).json()).version).toBe('0.2.0');
    expect((await fetch(`${repoUrl}/api/charts/nope`)).status).toBe(404);
    expect((await fetch(`${repoUrl}/api/charts/web/9.9.9`)).status).toBe(404);

    const del = await fetch(`${repoUrl}/api/charts/web/0.1.0`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect(await del.json()).toEqual({ deleted: true });
    expect((await getIndex(repoUrl)).doc.entries.web.map((e: { version: string }) => e.version)).toEqual(['0.2.0']);
    expect((await fetch(`${repoUrl}/web-0.1.0.tgz`)).status).toBe(404);
    expect((await fetch(`${repoUrl}/api/charts/web/0.1.0`, { method: 'DELETE' })).status).toBe(404);
  });

  it('helm dependency update: index of the dependency repo, then the package its entry names', async () => {
    const tgz = await chartTgz(chart('redis', '17.3.1'));
    expect((await cmPush(srv.url, repoUrl, 'redis-17.3.1.tgz', tgz)).status).toBe(201);
    const { doc } = await getIndex(repoUrl);
    const pulled = await helmPull(repoUrl, doc, 'redis', '17.3.1');
    expect(pulled.res.status).toBe(200);
    expect(pulled.body.equals(tgz)).toBe(true);
  });
});
