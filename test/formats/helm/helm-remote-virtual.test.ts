import jsyaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { startUpstream, type FakeUpstream } from '../../helpers/upstream.js';
import { chartTgz, cmPush, getIndex, helmPull, sha256hex } from './charts.js';

let srv: TestServer;
let upstream: FakeUpstream;
let assets: FakeUpstream;
const files: Record<string, Buffer> = {};
const assetFiles: Record<string, Buffer> = {};
let upstreamIndex = '';

const chart = (name: string, version: string) => ({ apiVersion: 'v2', name, version, description: `${name} ${version}` });

function serve(map: Record<string, Buffer>, index?: () => string) {
  return (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (index && path === '/charts/index.yaml') {
      res.writeHead(200, { 'content-type': 'application/x-yaml' }).end(index());
      return;
    }
    const body = map[path];
    if (!body) return void res.writeHead(404).end('not found');
    res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': body.length }).end(body);
  };
}

beforeAll(async () => {
  // The upstream repo lists one chart by a relative URL and others as release assets on a second host.
  assets = await startUpstream(serve(assetFiles));
  upstream = await startUpstream(serve(files, () => upstreamIndex));
  const web = await chartTgz(chart('web', '1.0.0'));
  const db = await chartTgz(chart('db', '2.0.0'));
  const corp = await chartTgz(chart('corp-lib', '9.9.9'));
  const tampered = await chartTgz(chart('evil', '1.0.0'));
  files['/charts/web-1.0.0.tgz'] = web;
  files['/charts/packages/corp-lib-9.9.9.tgz'] = corp;
  assetFiles['/releases/download/db-2.0.0/db-2.0.0.tgz'] = db;
  assetFiles['/evil.tgz'] = tampered;
  upstreamIndex = jsyaml.dump({
    apiVersion: 'v1',
    entries: {
      web: [{ ...chart('web', '1.0.0'), digest: sha256hex(web), urls: ['web-1.0.0.tgz'], created: '2024-01-01T00:00:00Z' }],
      db: [{ ...chart('db', '2.0.0'), digest: sha256hex(db), urls: [`${assets.url}/releases/download/db-2.0.0/db-2.0.0.tgz`] }],
      'corp-lib': [{ ...chart('corp-lib', '9.9.9'), digest: sha256hex(corp), urls: ['packages/corp-lib-9.9.9.tgz'] }],
      evil: [{ ...chart('evil', '1.0.0'), digest: sha256hex(Buffer.from('something else')), urls: [`${assets.url}/evil.tgz`] }],
    },
    generated: '2024-01-01T00:00:00Z',
  });
  srv = await startServer({ 'remote.metadata_ttl': '1s', 'remote.upstream_timeout': '1s' });
  await srv.addRepo({ name: 'hr', format: 'helm', kind: 'remote', upstream: `${upstream.url}/charts` });
  await srv.addRepo({ name: 'hloc', format: 'helm', kind: 'local' });
  await srv.addRepo({ name: 'hv', format: 'helm', kind: 'virtual', members: ['hloc', 'hr'] });
  await srv.addRepo({ name: 'hinner', format: 'helm', kind: 'virtual', members: ['hr'] });
  await srv.addRepo({ name: 'hnested', format: 'helm', kind: 'virtual', members: ['hloc', 'hinner'] });
});
afterAll(async () => {
  await srv?.close();
  await upstream?.close();
  await assets?.close();
});

describe('helm remote repo', () => {
  it('caches the upstream index and rewrites every chart URL to this server, relative or on another host', async () => {
    const first = await getIndex(`${srv.url}/hr`);
    expect(first.res.status).toBe(200);
    expect(first.res.headers.get('x-artifact-source')).toBe('remote');
    expect(first.doc.entries.web[0].urls).toEqual([`${srv.url}/hr/web-1.0.0.tgz`]);
    expect(first.doc.entries.db[0].urls).toEqual([`${srv.url}/hr/db-2.0.0.tgz`]);
    expect(first.doc.entries.web[0].digest).toBe(sha256hex(files['/charts/web-1.0.0.tgz']));
    expect(first.doc.serverInfo).toEqual({ contextPath: '/hr' });
    const second = await getIndex(`${srv.url}/hr`);
    expect(second.res.headers.get('x-artifact-source')).toBe('cache');
    expect(upstream.count('/charts/index.yaml')).toBe(1);
    // The parsed upstream index is kept by the digest of the cached copy, not re-parsed per request.
    const cached = await srv.svc.meta.files.get('hr', 'index.yaml');
    expect(srv.svc.parsedDocs.get(`helm-index:hr:${cached!.digest}`)).toBeInstanceOf(Map);
  });

  it('helm pull fetches each chart from where the upstream entry points, verified, then from cache', async () => {
    const { doc } = await getIndex(`${srv.url}/hr`);
    const web = await helmPull(`${srv.url}/hr`, doc, 'web', '1.0.0');
    expect(web.res.status).toBe(200);
    expect(web.res.headers.get('x-artifact-source')).toBe('remote');
    expect(web.body.equals(files['/charts/web-1.0.0.tgz'])).toBe(true);
    const db = await helmPull(`${srv.url}/hr`, doc, 'db', '2.0.0');
    expect(db.body.equals(assetFiles['/releases/download/db-2.0.0/db-2.0.0.tgz'])).toBe(true);
    expect(assets.count('/releases/download/db-2.0.0/db-2.0.0.tgz')).toBe(1);
    const again = await helmPull(`${srv.url}/hr`, doc, 'db', '2.0.0');
    expect(again.res.headers.get('x-artifact-source')).toBe('cache');
    expect(assets.count('/releases/download/db-2.0.0/db-2.0.0.tgz')).toBe(1);
  });

  it('a package that does not match its index digest is refused and not cached', async () => {
    // A first fetch streams as it arrives: a mismatch cuts the transfer before its last byte.
    const completed = await fetch(`${srv.url}/hr/evil-1.0.0.tgz`).then((res) => res.arrayBuffer().then(() => true, () => false), () => false);
    expect(completed).toBe(false);
    expect(await srv.svc.meta.files.get('hr', 'evil-1.0.0.tgz')).toBeNull();
    expect(await srv.svc.blob.stat(`sha256:${sha256hex(assetFiles['/evil.tgz'])}`)).toBeNull();
    expect((await fetch(`${srv.url}/hr/unknown-1.0.0.tgz`)).status).toBe(404);
  });

  it('is a proxy: pushes are 405', async () => {
    const res = await cmPush(srv.url, `${srv.url}/hr`, 'x-1.0.0.tgz', await chartTgz(chart('x', '1.0.0')));
    expect(res.status).toBe(405);
  });
});

describe('helm virtual repo', () => {
  beforeAll(async () => {
    expect((await cmPush(srv.url, `${srv.url}/hloc`, 'corp-lib-1.0.0.tgz', await chartTgz(chart('corp-lib', '1.0.0')))).status).toBe(201);
  });

  it('merges member indexes; a chart name published locally hides the remote versions of it', async () => {
    const { res, doc } = await getIndex(`${srv.url}/hv`);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-artifact-repo')).toBe('hv');
    expect(doc.entries['corp-lib'].map((e: { version: string }) => e.version)).toEqual(['1.0.0']);
    expect(doc.entries.web[0].urls).toEqual([`${srv.url}/hv/web-1.0.0.tgz`]);
    expect(Object.keys(doc.entries).sort()).toEqual(['corp-lib', 'db', 'evil', 'web']);
    const local = await helmPull(`${srv.url}/hv`, doc, 'corp-lib', '1.0.0');
    expect(local.res.headers.get('x-artifact-repo')).toBe('hloc');
    const remote = await helmPull(`${srv.url}/hv`, doc, 'web', '1.0.0');
    expect(remote.res.status).toBe(200);
    expect(remote.res.headers.get('x-artifact-repo')).toBe('hr');
    expect((await fetch(`${srv.url}/hv/corp-lib-9.9.9.tgz`)).status).toBe(404);
  });

  it('the shadowing rule holds through a nested virtual repo', async () => {
    const { doc } = await getIndex(`${srv.url}/hnested`);
    expect(doc.entries['corp-lib'].map((e: { version: string }) => e.version)).toEqual(['1.0.0']);
    expect(doc.entries.web).toHaveLength(1);
    expect((await fetch(`${srv.url}/hnested/corp-lib-9.9.9.tgz`)).status).toBe(404);
    const web = await fetch(`${srv.url}/hnested/web-1.0.0.tgz`);
    expect(web.status).toBe(200);
    expect(web.headers.get('x-artifact-repo')).toBe('hr');
  });

  it('allow_shadowed lets the remote versions of a listed name through', async () => {
    await srv.addRepo({ name: 'hv-allow', format: 'helm', kind: 'virtual', members: ['hloc', 'hr'], allow_shadowed: ['corp-lib'] });
    const { doc } = await getIndex(`${srv.url}/hv-allow`);
    expect(doc.entries['corp-lib'].map((e: { version: string }) => e.version)).toEqual(['9.9.9', '1.0.0']);
  });

  it('keeps serving cached indexes and charts when the upstream is down', async () => {
    await new Promise((r) => setTimeout(r, 1100)); // past metadata_ttl
    upstream.handle((_req, res) => { res.destroy(); });
    const { res, doc } = await getIndex(`${srv.url}/hr`);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-artifact-stale')).toBe('true');
    const web = await helmPull(`${srv.url}/hr`, doc, 'web', '1.0.0');
    expect(web.res.status).toBe(200);
    expect(web.res.headers.get('x-artifact-source')).toBe('cache');
  });
});
