import { createHash, randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { AppError } from '../../src/lib/errors.js';
import type { Operation } from '../../src/server/pipeline.js';
import { startServer, type TestServer } from '../helpers/server.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Seen {
  op: Operation;
  status?: number;
  error?: unknown;
}

/** A real server whose pipeline hooks record every Operation; `x-refuse` makes the before-hook throw UNAUTHORIZED. */
describe('one request pipeline: every format through the same hooks', () => {
  let srv: TestServer;
  let seen: Seen[] = [];
  const hidden = new Set<string>();

  beforeAll(async () => {
    srv = await startServer();
    srv.svc.pipeline.before.push((op, req: FastifyRequest) => {
      seen.push({ op });
      if (req.headers['x-refuse']) throw new AppError('UNAUTHORIZED', 'who are you');
    });
    srv.svc.pipeline.after.push((op, _req, outcome) => {
      const s = seen.find((x) => x.op === op);
      if (s) Object.assign(s, { status: outcome.status, error: outcome.error });
    });
    srv.svc.pipeline.visible.push((_op, repo) => !hidden.has(repo.name));
    for (const [name, format] of [['files', 'generic'], ['npmjs', 'npm'], ['py', 'pypi'], ['charts', 'helm'], ['el', 'rpm'], ['apk', 'alpine'], ['dock', 'docker'], ['dock2', 'docker']]) {
      await srv.addRepo({ name, format, kind: 'local' });
    }
  });
  afterAll(() => srv.close());
  beforeEach(() => {
    seen = [];
    hidden.clear();
  });

  const req = (path: string, init: RequestInit = {}) => fetch(`${srv.url}${path}`, init);

  /** The one Operation the request made, with the outcome the after-hook saw. */
  async function one(path: string, init: RequestInit = {}): Promise<{ res: Response; s: Seen }> {
    seen = [];
    const res = await req(path, init);
    await res.arrayBuffer();
    expect(seen, `${init.method ?? 'GET'} ${path}`).toHaveLength(1);
    return { res, s: seen[0] };
  }

  const put = (body: string | Buffer, type = 'application/octet-stream'): RequestInit => ({ method: 'PUT', body: new Uint8Array(Buffer.from(body)), headers: { 'content-type': type } });

  const cases: { format: string; repo: string; read: [string, string | undefined, number]; write: [string, RequestInit, string | undefined, number] }[] = [
    { format: 'generic', repo: 'files', read: ['/files/a/b.txt', 'a/b.txt', 404], write: ['/files/a/b.txt', put('hello'), 'a/b.txt', 201] },
    { format: 'npm', repo: 'npmjs', read: ['/npmjs/@acme%2fwidget', '@acme/widget', 404], write: ['/npmjs/@acme%2fwidget', put('{}', 'application/json'), '@acme/widget', 400] },
    { format: 'pypi', repo: 'py', read: ['/py/simple/requests/', 'simple/requests/', 404], write: ['/py/', { method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } }, undefined, 400] },
    { format: 'helm', repo: 'charts', read: ['/charts/api/charts/demo', 'api/charts/demo', 404], write: ['/charts/demo-1.0.0.tgz', put('not a chart'), 'demo-1.0.0.tgz', 400] },
    { format: 'rpm', repo: 'el', read: ['/el/x-1-1.noarch.rpm', 'x-1-1.noarch.rpm', 404], write: ['/el/x-1-1.noarch.rpm', put('not an rpm'), 'x-1-1.noarch.rpm', 400] },
    {
      format: 'alpine', repo: 'apk', read: ['/apk/v3.19/main/x86_64/x-1-r0.apk', 'v3.19/main/x86_64/x-1-r0.apk', 404],
      write: ['/apk/v3.19/main/x86_64/x-1-r0.apk', put('not an apk'), 'v3.19/main/x86_64/x-1-r0.apk', 400],
    },
    {
      format: 'docker', repo: 'dock', read: ['/v2/dock/img/manifests/latest', 'dock/img/manifests/latest', 404],
      write: [`/v2/dock/img/blobs/uploads/?digest=${sha('layer')}`, { method: 'POST', body: 'layer' }, 'dock/img/blobs/uploads/', 201],
    },
  ];

  for (const c of cases) {
    it(`${c.format}: a read and a write are Operations (format, action, repo, subject) before the handler, with their outcome after`, async () => {
      const [rpath, rsubject, rstatus] = c.read;
      const r = await one(rpath);
      expect(r.res.status).toBe(rstatus);
      expect(r.s.op).toMatchObject({ format: c.format, action: 'read', repo: { name: c.repo }, subject: rsubject });
      expect(r.s.op.touches.map((t) => [t.repo.name, t.action])).toEqual([[c.repo, 'read']]);
      expect(r.s.status).toBe(rstatus);

      const [wpath, init, wsubject, wstatus] = c.write;
      const w = await one(wpath, init);
      expect(w.res.status).toBe(wstatus);
      const action = 'write';
      expect(w.s.op).toMatchObject({ format: c.format, action, repo: { name: c.repo }, subject: wsubject });
      expect(w.s.op.touches.map((t) => [t.repo.name, t.action])).toEqual([[c.repo, action]]);
      expect(w.s.status).toBe(wstatus);
      // A request the handler fails carries its error to the after-hook.
      if (wstatus >= 400) expect(w.s.error).toBeInstanceOf(Error);

      // Refused before the handler: nothing written, the after-hook sees the 401.
      const refused = await one(wpath, { ...init, headers: { ...(init.headers as Record<string, string>), 'x-refuse': '1' } });
      expect(refused.res.status).toBe(401);
      expect(refused.s.status).toBe(401);
    });
  }

  it('a refused write stores nothing (the before-hook runs before the handler)', async () => {
    const res = await req('/files/refused.txt', { ...put('x'), headers: { 'x-refuse': '1' } });
    expect(res.status).toBe(401);
    expect((await req('/files/refused.txt')).status).toBe(404);
  });

  it('UNAUTHORIZED from a before-hook answers in each protocol\'s error body with its challenge', async () => {
    const refuse = { headers: { 'x-refuse': '1' } };
    const pull = await req('/v2/dock/img/manifests/latest', refuse);
    expect(pull.status).toBe(401);
    expect(pull.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    expect(pull.headers.get('www-authenticate')).toBe(`Bearer realm="${srv.url}/v2/token",service="artifactapi",scope="repository:dock/img:pull"`);
    expect(await pull.json()).toEqual({ errors: [{ code: 'UNAUTHORIZED', message: 'who are you', detail: null }] });
    const push = await req('/v2/dock/img/manifests/v1', { method: 'PUT', body: '{}', headers: { 'x-refuse': '1' } });
    expect(push.headers.get('www-authenticate')).toBe(`Bearer realm="${srv.url}/v2/token",service="artifactapi",scope="repository:dock/img:pull,push"`);
    const base = await req('/v2/', refuse);
    expect(base.status).toBe(401);
    expect(base.headers.get('www-authenticate')).toBe(`Bearer realm="${srv.url}/v2/token",service="artifactapi"`);

    const npm = await req('/npmjs/lodash', refuse);
    expect(npm.status).toBe(401);
    expect(npm.headers.get('www-authenticate')).toBe('Basic realm="artifactapi", charset="UTF-8"');
    expect(await npm.json()).toEqual({ error: 'who are you' });

    for (const path of ['/py/simple/', '/files/a.txt', '/charts/index.yaml', '/el/repodata/repomd.xml', '/apk/keys', '/api/v1/repositories']) {
      const res = await req(path, refuse);
      expect(res.status, path).toBe(401);
      expect(res.headers.get('www-authenticate'), path).toBe('Basic realm="artifactapi", charset="UTF-8"');
      expect(await res.json(), path).toEqual({ error: { code: 'UNAUTHORIZED', message: 'who are you' } });
    }
    // Health stays open.
    expect((await req('/health', refuse)).status).toBe(200);
  });

  async function pushImage(name: string) {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rand: randomBytes(4).toString('hex') }));
    const cd = sha(config);
    expect((await req(`/v2/${name}/blobs/uploads/?digest=${cd}`, { method: 'POST', body: new Uint8Array(config) })).status).toBe(201);
    const manifest = JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cd, size: config.length }, layers: [],
    });
    const res = await req(`/v2/${name}/manifests/v1`, { method: 'PUT', body: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
    expect(res.status).toBe(201);
    return cd;
  }

  it('_catalog and the repository list leave out repos a visible hook refuses; repo-less routes are read Operations', async () => {
    await pushImage('dock/app');
    await pushImage('dock2/app');
    const all = await one('/v2/_catalog');
    expect(all.s.op).toMatchObject({ format: 'docker', action: 'read', touches: [] });
    expect(all.s.op.repo).toBeUndefined();
    expect((await (await req('/v2/_catalog')).json()).repositories).toEqual(['dock/app', 'dock2/app']);
    hidden.add('dock2');
    expect(await (await req('/v2/_catalog')).json()).toEqual({ repositories: ['dock/app'] });

    const list = await one('/api/v1/repositories');
    expect(list.s.op).toMatchObject({ format: 'api', action: 'read', touches: [] });
    const names = ((await (await req('/api/v1/repositories')).json()) as { name: string }[]).map((r) => r.name);
    expect(names).not.toContain('dock2');
    expect(names).toContain('dock');

    const show = await one('/api/v1/repositories/dock');
    expect(show.s.op).toMatchObject({ format: 'api', action: 'read', repo: { name: 'dock' } });
    // Changes need the admin (the auth hook runs first and refuses anonymous).
    const create = await one('/api/v1/repositories', {
      method: 'POST', body: JSON.stringify({ name: 'made', format: 'generic', kind: 'local' }), headers: { 'content-type': 'application/json', authorization: srv.adminAuth },
    });
    expect(create.res.status).toBe(201);
    expect(create.s.op).toMatchObject({ format: 'api', action: 'admin', subject: 'made' });
    const del = await one('/api/v1/repositories/made', { method: 'DELETE', headers: { authorization: srv.adminAuth } });
    expect(del.res.status).toBe(204);
    expect(del.s.op).toMatchObject({ format: 'api', action: 'admin', repo: { name: 'made' } });
  });

  it('a cross-repo mount touches its source repo with read', async () => {
    const cd = await pushImage('dock2/src');
    const m = await one(`/v2/dock/dst/blobs/uploads/?mount=${cd}&from=dock2/src`, { method: 'POST' });
    expect(m.res.status).toBe(201);
    expect(m.s.op.action).toBe('write');
    expect(m.s.op.touches.map((t) => [t.repo.name, t.action])).toEqual([['dock', 'write'], ['dock2', 'read']]);
  });
});

describe('server.trust_proxy', () => {
  async function clientIp(flags: Record<string, unknown>): Promise<string> {
    const srv = await startServer(flags);
    try {
      await srv.addRepo({ name: 'files', format: 'generic', kind: 'local' });
      let ip = '';
      srv.svc.pipeline.before.push((_op, req) => { ip = req.ip; });
      await (await fetch(`${srv.url}/files/x`, { headers: { 'x-forwarded-for': '203.0.113.9' } })).arrayBuffer();
      return ip;
    } finally {
      await srv.close();
    }
  }

  it('ignores X-Forwarded-For by default and honours it when set to true or to the proxy address', async () => {
    expect(await clientIp({})).toBe('127.0.0.1');
    expect(await clientIp({ 'server.trust_proxy': true })).toBe('203.0.113.9');
    expect(await clientIp({ 'server.trust_proxy': ['127.0.0.1'] })).toBe('203.0.113.9');
    expect(await clientIp({ 'server.trust_proxy': '10.0.0.0/8' })).toBe('127.0.0.1');
  });

  it('accepts true, false or addresses/CIDRs and names the key otherwise', () => {
    const load = (v: unknown) => loadConfig({ noDefaultFile: true, env: {}, flags: { 'server.trust_proxy': v } }).server.trust_proxy;
    expect(load('false')).toBe(false);
    expect(load('10.0.0.0/8, ::1')).toEqual(['10.0.0.0/8', '::1']);
    expect(() => load('proxy.example')).toThrow(/server\.trust_proxy: expected true, false or a list of addresses\/CIDRs/);
    expect(() => load(['10.0.0.0/33'])).toThrow(/server\.trust_proxy/);
  });
});
