import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { FakeRegistry, packAll, type PackedVersion } from './fake-registry.js';
import { HAVE_NPM, NpmScratch } from './npm-helpers.js';

const ABBREV = 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*';

describe.skipIf(!HAVE_NPM)('npm remote repository', () => {
  let srv: TestServer;
  let s: NpmScratch;
  let reg: FakeRegistry;
  let packed: PackedVersion[];
  let registry: string;

  beforeAll(async () => {
    s = await NpmScratch.create();
    packed = await packAll(s, [
      { name: 'left-pad-x', version: '1.0.0' },
      { name: 'left-pad-x', version: '1.1.0' },
      { name: '@up/util', version: '2.0.0', dependencies: { 'left-pad-x': '^1.1.0' } },
      { name: '@up/app', version: '1.0.0', dependencies: { '@up/util': '^2.0.0', 'left-pad-x': '^1.0.0' } },
      { name: 'corrupted', version: '1.0.0' },
    ]);
    reg = await FakeRegistry.start(packed);
    reg.corrupt.add('corrupted-1.0.0.tgz');
    srv = await startServer();
    await srv.addRepo({ name: 'npmjs', format: 'npm', kind: 'remote', upstream: reg.url, metadata_ttl: '1s' });
    registry = `${srv.url}/npmjs/`;
  });
  afterAll(async () => {
    await srv?.close();
    await reg?.close();
    await s?.cleanup();
  });

  it('npm install of a scoped package with dependencies goes through the proxy, then comes from the cache', async () => {
    const proj = await s.project();
    await s.npm(['install', '@up/app'], { cwd: proj, registry });
    expect(JSON.parse(await readFile(join(proj, 'node_modules/@up/app/package.json'), 'utf8')).version).toBe('1.0.0');
    expect(JSON.parse(await readFile(join(proj, 'node_modules/@up/util/package.json'), 'utf8')).version).toBe('2.0.0');
    expect(JSON.parse(await readFile(join(proj, 'node_modules/left-pad-x/package.json'), 'utf8')).version).toBe('1.1.0');
    const lock = JSON.parse(await readFile(join(proj, 'package-lock.json'), 'utf8'));
    const util = packed.find((p) => p.name === '@up/util')!;
    expect(lock.packages['node_modules/@up/util'].integrity).toBe(`sha512-${createHash('sha512').update(util.data).digest('base64')}`);
    // every tarball was fetched once from where dist.tarball said; one upstream packument per package
    expect(reg.up.count('/tarballs/')).toBe(3);
    let packumentRequests = 0;
    for (const p of ['@up/app', '@up/util', 'left-pad-x']) {
      const rec = await srv.svc.meta.files.get('npmjs', `${p}/-/_packument.json`);
      expect(rec, p).not.toBeNull();
      packumentRequests += reg.up.count(`/${p.replace('/', '%2F')}`);
    }
    // A slow install can outlive this repo's 1 s TTL: a revalidation is then a conditional request
    // answered 304, never a second download. Full downloads: exactly one per package.
    expect(packumentRequests - reg.notModified).toBe(3);

    // A second install with a fresh npm cache: tarballs come from our cache.
    const proj2 = await s.project();
    await s.npm(['install', '@up/app'], { cwd: proj2, registry });
    expect(reg.up.count('/tarballs/')).toBe(3);
    const t = await fetch(`${srv.url}/npmjs/@up/util/-/up-util-2.0.0.tgz`);
    expect(t.headers.get('x-artifact-source')).toBe('cache');
    expect(t.headers.get('x-artifact-repo')).toBe('npmjs');
  });

  it('rewrites dist.tarball, caches full and abbreviated packuments under separate keys, with Vary: Accept', async () => {
    const before = reg.up.count('/@up%2Futil') + reg.up.count('/@up%2futil');
    const full = await fetch(`${srv.url}/npmjs/@up%2futil`);
    expect(full.status).toBe(200);
    expect(full.headers.get('vary')).toMatch(/accept/i);
    expect(full.headers.get('content-type')).toMatch(/^application\/json/);
    const fj = await full.json();
    expect(fj.description).toBe('the @up/util package');
    expect(fj.versions['2.0.0'].readme).toBe('long readme');
    expect(fj.versions['2.0.0'].dist.tarball).toBe(`${srv.url}/npmjs/@up/util/-/up-util-2.0.0.tgz`);

    const ab = await fetch(`${srv.url}/npmjs/@up/util`, { headers: { accept: ABBREV } });
    expect(ab.headers.get('content-type')).toMatch(/^application\/vnd\.npm\.install-v1\+json/);
    expect(ab.headers.get('vary')).toMatch(/accept/i);
    const aj = await ab.json();
    expect(aj.description).toBeUndefined();
    expect(aj.modified).toBe('2026-01-01T00:00:00.000Z');
    expect(aj.versions['2.0.0'].readme).toBeUndefined();
    expect(aj.versions['2.0.0'].dist.tarball).toBe(`${srv.url}/npmjs/@up/util/-/up-util-2.0.0.tgz`);
    expect(aj.versions['2.0.0'].dist.integrity).toBe(fj.versions['2.0.0'].dist.integrity);

    expect(await srv.svc.meta.files.get('npmjs', '@up/util/-/_packument.json')).not.toBeNull();
    const after = reg.up.count('/@up%2Futil') + reg.up.count('/@up%2futil');
    expect(after - before).toBeLessThanOrEqual(2);
  });

  it('verifies tarballs against dist.integrity before caching: a corrupt upstream body is never kept', async () => {
    const r = await fetch(`${srv.url}/npmjs/corrupted/-/corrupted-1.0.0.tgz`).then(
      async (res) => ({ status: res.status, ok: await res.arrayBuffer().then(() => true, () => false) }),
      () => ({ status: 0, ok: false }),
    );
    expect(r.status === 200 ? r.ok : false).toBe(false);
    expect(await srv.svc.meta.files.get('npmjs', 'corrupted/-/corrupted-1.0.0.tgz')).toBeNull();
    const v = packed.find((p) => p.name === 'corrupted')!;
    const bad = Buffer.concat([v.data.subarray(0, v.data.length - 1), Buffer.from([v.data[v.data.length - 1] ^ 1])]);
    expect(await srv.svc.blob.stat(`sha256:${createHash('sha256').update(bad).digest('hex')}`)).toBeNull();

    // Once the upstream serves the right bytes, the same request fills the cache.
    reg.corrupt.clear();
    const ok = await fetch(`${srv.url}/npmjs/corrupted/-/corrupted-1.0.0.tgz`);
    expect(ok.status).toBe(200);
    expect(Buffer.from(await ok.arrayBuffer()).equals(v.data)).toBe(true);
    expect(await srv.svc.meta.files.get('npmjs', 'corrupted/-/corrupted-1.0.0.tgz')).not.toBeNull();
  });

  it('shares one upstream fetch between concurrent misses of a tarball', async () => {
    const v = packed.find((p) => p.name === 'left-pad-x' && p.version === '1.0.0')!;
    await fetch(`${srv.url}/npmjs/left-pad-x`, { headers: { accept: ABBREV } });
    const before = reg.up.count(reg.tarballPath(v));
    const bodies = await Promise.all(Array.from({ length: 8 }, () => fetch(`${srv.url}/npmjs/left-pad-x/-/left-pad-x-1.0.0.tgz`).then(async (r) => Buffer.from(await r.arrayBuffer()))));
    for (const b of bodies) expect(b.equals(v.data)).toBe(true);
    expect(reg.up.count(reg.tarballPath(v)) - before).toBe(1);
  });

  it('does not serve a tarball the upstream packument does not list', async () => {
    const r = await fetch(`${srv.url}/npmjs/left-pad-x/-/left-pad-x-9.9.9.tgz`);
    expect(r.status).toBe(404);
    expect(await r.json()).toEqual({ error: expect.any(String) });
    const u = await fetch(`${srv.url}/npmjs/no-such-package-here`);
    expect(u.status).toBe(404);
    expect(await u.json()).toEqual({ error: expect.any(String) });
  });

  it('revalidates packuments after the TTL with the upstream ETag, and picks up new versions', async () => {
    await fetch(`${srv.url}/npmjs/left-pad-x`);
    await new Promise((r) => setTimeout(r, 1100));
    const key = 'GET /left-pad-x';
    const before = reg.up.hits.get(key) ?? 0;
    const nm = reg.notModified;
    const r = await fetch(`${srv.url}/npmjs/left-pad-x`);
    expect(r.status).toBe(200);
    expect((reg.up.hits.get(key) ?? 0) - before).toBe(1);
    expect(reg.notModified - nm).toBe(1); // revalidated with If-None-Match: the stored copy is kept

    const [v2] = await packAll(s, [{ name: 'left-pad-x', version: '1.2.0' }]);
    reg.versions.push(v2);
    await new Promise((r) => setTimeout(r, 1100));
    const doc = await (await fetch(`${srv.url}/npmjs/left-pad-x`)).json();
    expect(doc['dist-tags'].latest).toBe('1.2.0');
  });

  it('serves stale packuments when the upstream is down, and npm install still works from the cache', async () => {
    // Warm the cache once more, then take the upstream away.
    const warm = await s.project();
    await s.npm(['install', '@up/app'], { cwd: warm, registry });
    reg.down = true;
    await new Promise((r) => setTimeout(r, 1100));
    const r = await fetch(`${srv.url}/npmjs/@up%2fapp`, { headers: { accept: ABBREV } });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-artifact-stale')).toBe('true');
    const proj = await s.project();
    await s.npm(['install', '@up/app'], { cwd: proj, registry });
    expect(JSON.parse(await readFile(join(proj, 'node_modules/@up/util/package.json'), 'utf8')).version).toBe('2.0.0');

    // Nothing cached and the upstream down: 502 in npm's shape.
    const miss = await fetch(`${srv.url}/npmjs/never-seen`);
    expect(miss.status).toBe(502);
    expect(await miss.json()).toEqual({ error: expect.any(String) });
    reg.down = false;
  });

  it('refuses writes to a remote repo with 405', async () => {
    const r = await fetch(`${srv.url}/npmjs/left-pad-x`, { method: 'PUT', body: '{}' });
    expect(r.status).toBe(405);
    expect(await r.json()).toEqual({ error: expect.any(String) });
  });
});
