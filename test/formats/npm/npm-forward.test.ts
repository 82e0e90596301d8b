import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { startUpstream, type FakeUpstream } from '../../helpers/upstream.js';
import { HAVE_NPM, NpmScratch } from './npm-helpers.js';

const ADVISORY = { id: 1099, url: 'https://example.test/advisories/1099', title: 'Prototype pollution in left-pad-x', severity: 'high', vulnerable_versions: '<1.1.0', cwe: ['CWE-1321'], cvss: { score: 7.5, vectorString: null } };
const TARBALL = Buffer.from('not really a tarball');

/**
 * An npm registry that answers audit and search the way registry.npmjs.org
 * does (bulk advisories take a gzip body), and serves a packument for
 * left-pad-x (npm audit reads it to say which version fixes the advisory).
 */
async function auditingRegistry(): Promise<{ up: FakeUpstream; bodies: unknown[] }> {
  const bodies: unknown[] = [];
  const up = await startUpstream(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let raw = Buffer.concat(chunks);
    if (req.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
    const url = req.url ?? '/';
    const json = (status: number, v: unknown) => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(v));
    if (req.method === 'POST' && url === '/-/npm/v1/security/advisories/bulk') {
      const asked = JSON.parse(raw.toString()) as Record<string, string[]>;
      bodies.push(asked);
      return json(200, asked['left-pad-x'] ? { 'left-pad-x': [ADVISORY] } : {});
    }
    if (req.method === 'POST' && url === '/-/npm/v1/security/audits/quick') {
      bodies.push(JSON.parse(raw.toString()));
      return json(200, { actions: [], advisories: { 1099: ADVISORY }, metadata: { vulnerabilities: { high: 1 } } });
    }
    if (req.method === 'GET' && url.startsWith('/-/v1/search?')) {
      const text = new URL(url, 'http://x').searchParams.get('text');
      const gz = gzipSync(JSON.stringify({
        objects: [{
          package: { name: `${text}-found`, version: '1.0.0', description: 'from upstream', keywords: [], date: '2026-01-01T00:00:00.000Z', links: {}, publisher: { username: 'u' }, maintainers: [{ username: 'u', email: 'u@example.test' }] },
          score: { final: 1, detail: { quality: 1, popularity: 1, maintenance: 1 } }, searchScore: 1,
        }],
        total: 1, time: '2026-01-01T00:00:00.000Z',
      }));
      if (!/gzip/.test(String(req.headers['accept-encoding']))) return json(200, JSON.parse(gunzipSync(gz).toString()));
      return void res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': String(gz.length) }).end(gz);
    }
    if (req.method === 'GET' && (url === '/left-pad-x' || url.startsWith('/tarballs/'))) {
      if (url.startsWith('/tarballs/')) return void res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(TARBALL);
      const dist = (v: string) => ({ tarball: `${up.url}/tarballs/left-pad-x-${v}.tgz`, integrity: `sha512-${createHash('sha512').update(TARBALL).digest('base64')}` });
      return json(200, { name: 'left-pad-x', 'dist-tags': { latest: '1.1.0' }, versions: { '1.0.0': { name: 'left-pad-x', version: '1.0.0', dist: dist('1.0.0') }, '1.1.0': { name: 'left-pad-x', version: '1.1.0', dist: dist('1.1.0') } } });
    }
    json(404, { error: 'not found' });
  });
  return { up, bodies };
}

describe('npm audit and search pass through remote and virtual repos', () => {
  let srv: TestServer;
  let reg: Awaited<ReturnType<typeof auditingRegistry>>;
  beforeAll(async () => {
    reg = await auditingRegistry();
    srv = await startServer();
    await srv.addRepo({ name: 'npmjs', format: 'npm', kind: 'remote', upstream: reg.up.url });
    await srv.addRepo({ name: 'npm-local', format: 'npm', kind: 'local' });
    await srv.addRepo({ name: 'npm-all', format: 'npm', kind: 'virtual', members: ['npm-local', 'npmjs'] });
  });
  afterAll(async () => {
    await srv?.close();
    await reg?.up.close();
  });

  for (const repo of ['npmjs', 'npm-all']) {
    it(`bulk advisories (gzip body) and quick audit through ${repo}: the upstream's JSON`, async () => {
      const bulk = await fetch(`${srv.url}/${repo}/-/npm/v1/security/advisories/bulk`, {
        method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gzipSync(JSON.stringify({ 'left-pad-x': ['1.0.0'] })),
      });
      expect(bulk.status).toBe(200);
      expect(bulk.headers.get('x-artifact-repo')).toBe('npmjs');
      expect(await bulk.json()).toEqual({ 'left-pad-x': [ADVISORY] });
      expect(reg.bodies.at(-1)).toEqual({ 'left-pad-x': ['1.0.0'] });

      const quick = await fetch(`${srv.url}/${repo}/-/npm/v1/security/audits/quick`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'consumer', requires: { 'left-pad-x': '^1.0.0' } }),
      });
      expect(quick.status).toBe(200);
      expect((await quick.json()).advisories['1099'].title).toBe(ADVISORY.title);
    });

    it(`search through ${repo}: the upstream's answer, query string and encoding kept`, async () => {
      const r = await fetch(`${srv.url}/${repo}/-/v1/search?text=pad&size=20`);
      expect(r.status).toBe(200);
      expect(r.headers.get('x-artifact-source')).toBe('remote');
      expect((await r.json()).objects[0].package).toMatchObject({ name: 'pad-found', description: 'from upstream' });
      expect(reg.up.count('/-/v1/search?text=pad&size=20')).toBeGreaterThan(0);
    });
  }

  it('a local repo has no upstream to ask: 404 in npm shape; a wrong method: 405', async () => {
    const r = await fetch(`${srv.url}/npm-local/-/v1/search?text=pad`);
    expect(r.status).toBe(404);
    expect(await r.json()).toEqual({ error: expect.any(String) });
    const g = await fetch(`${srv.url}/npmjs/-/npm/v1/security/advisories/bulk`);
    expect(g.status).toBe(405);
    expect(await g.json()).toEqual({ error: expect.any(String) });
  });

  it.skipIf(!HAVE_NPM)('the real `npm audit` and `npm search` through the virtual repo', async () => {
    const s = await NpmScratch.create();
    try {
      const proj = await s.project();
      const registry = `${srv.url}/npm-all/`;
      await writeFile(join(proj, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', dependencies: { 'left-pad-x': '^1.0.0' } }));
      await writeFile(join(proj, 'package-lock.json'), JSON.stringify({
        name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true,
        packages: {
          '': { name: 'consumer', version: '1.0.0', dependencies: { 'left-pad-x': '^1.0.0' } },
          'node_modules/left-pad-x': { version: '1.0.0', resolved: `${registry}left-pad-x/-/left-pad-x-1.0.0.tgz`, integrity: `sha512-${createHash('sha512').update(TARBALL).digest('base64')}` },
        },
      }));
      const audit = await s.npm(['audit', '--json', '--package-lock-only'], { cwd: proj, registry, reject: false });
      const report = JSON.parse(audit.stdout);
      expect(report.vulnerabilities['left-pad-x']).toMatchObject({ severity: 'high' });
      expect(JSON.stringify(report.vulnerabilities['left-pad-x'].via)).toContain(ADVISORY.title);

      const search = await s.npm(['search', '--json', 'pad'], { cwd: proj, registry });
      expect(JSON.parse(search.stdout)[0]).toMatchObject({ name: 'pad-found' });
    } finally {
      await s.cleanup();
    }
  });
});
