import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { FakeRegistry, packAll, type PackedVersion } from './fake-registry.js';
import { HAVE_NPM, NpmScratch } from './npm-helpers.js';

const ABBREV = 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*';
const sri = (b: Buffer) => `sha512-${createHash('sha512').update(b).digest('base64')}`;

describe.skipIf(!HAVE_NPM)('npm virtual repository', () => {
  let srv: TestServer;
  let s: NpmScratch;
  let reg: FakeRegistry;
  let packed: PackedVersion[];
  let virt: string;

  beforeAll(async () => {
    s = await NpmScratch.create();
    packed = await packAll(s, [
      { name: 'public-only', version: '1.0.0' },
      { name: 'shared-lib', version: '1.0.0' },
      { name: 'shared-lib', version: '2.0.0' },
      { name: 'internal-name', version: '9.0.0' },
    ]);
    reg = await FakeRegistry.start(packed);
    srv = await startServer();
    await srv.addRepo({ name: 'npm-local', format: 'npm', kind: 'local' });
    await srv.addRepo({ name: 'npmjs', format: 'npm', kind: 'remote', upstream: reg.url });
    await srv.addRepo({ name: 'npm-all', format: 'npm', kind: 'virtual', members: ['npm-local', 'npmjs'], default_local: 'npm-local' });
    await srv.addRepo({ name: 'npm-open', format: 'npm', kind: 'virtual', members: ['npm-local', 'npmjs'], allow_shadowed: ['shared-lib'] });
    virt = `${srv.url}/npm-all/`;
  });
  afterAll(async () => {
    await srv?.close();
    await reg?.close();
    await s?.cleanup();
  });

  it('npm publish through the virtual URL lands in its default_local; npm install pulls private and public packages through one URL', async () => {
    const priv = await s.makePackage({ name: '@corp/private', version: '1.0.0', dependencies: { 'public-only': '^1.0.0' } });
    await s.npm(['publish'], { cwd: priv, registry: virt });
    expect(await srv.svc.meta.files.get('npm-local', '@corp/private/-/private-1.0.0.tgz')).not.toBeNull();

    const proj = await s.project();
    await s.npm(['install', '@corp/private'], { cwd: proj, registry: virt });
    expect(await readFile(join(proj, 'node_modules/@corp/private/index.js'), 'utf8')).toContain('@corp/private@1.0.0');
    expect(JSON.parse(await readFile(join(proj, 'node_modules/public-only/package.json'), 'utf8')).version).toBe('1.0.0');

    const doc = await (await fetch(`${srv.url}/npm-all/public-only`, { headers: { accept: ABBREV } })).json();
    expect(doc.versions['1.0.0'].dist.tarball).toBe(`${srv.url}/npm-all/public-only/-/public-only-1.0.0.tgz`);
    const t = await fetch(doc.versions['1.0.0'].dist.tarball);
    expect(t.status).toBe(200);
    expect(t.headers.get('x-artifact-repo')).toBe('npmjs');
    const p = await fetch(`${srv.url}/npm-all/@corp/private/-/private-1.0.0.tgz`);
    expect(p.headers.get('x-artifact-repo')).toBe('npm-local');
    expect(p.headers.get('x-artifact-source')).toBe('local');
  });

  it('hides remote versions of a name published locally (dependency confusion), unless allow_shadowed lists it', async () => {
    await s.npm(['publish'], { cwd: await s.makePackage({ name: 'internal-name', version: '1.0.0' }), registry: `${srv.url}/npm-local/` });
    const doc = await (await fetch(`${srv.url}/npm-all/internal-name`)).json();
    expect(Object.keys(doc.versions)).toEqual(['1.0.0']);
    expect(doc['dist-tags'].latest).toBe('1.0.0');
    const hidden = await fetch(`${srv.url}/npm-all/internal-name/-/internal-name-9.0.0.tgz`);
    expect(hidden.status).toBe(404);
    expect(await hidden.json()).toEqual({ error: expect.any(String) });
    expect(reg.up.count('/tarballs/internal-name')).toBe(0);

    const proj = await s.project();
    await s.npm(['install', 'internal-name'], { cwd: proj, registry: virt });
    expect(JSON.parse(await readFile(join(proj, 'node_modules/internal-name/package.json'), 'utf8')).version).toBe('1.0.0');
  });

  it('merges versions and dist-tags of all members when allowed; the first member wins on conflicts', async () => {
    // Local publishes shared-lib 1.0.0 with different bytes from the upstream's 1.0.0, plus a beta tag.
    const local = await s.makePackage({ name: 'shared-lib', version: '1.0.0', description: 'the local one' }, 'shared-local');
    await s.npm(['publish'], { cwd: local, registry: `${srv.url}/npm-local/` });
    const b = await s.makePackage({ name: 'shared-lib', version: '1.5.0-beta.0' }, 'shared-beta');
    await s.npm(['publish', '--tag', 'beta'], { cwd: b, registry: `${srv.url}/npm-local/` });
    const localDoc = await (await fetch(`${srv.url}/npm-local/shared-lib`)).json();

    const merged = await (await fetch(`${srv.url}/npm-open/shared-lib`)).json();
    expect(Object.keys(merged.versions).sort()).toEqual(['1.0.0', '1.5.0-beta.0', '2.0.0']);
    expect(merged.versions['1.0.0'].dist.integrity).toBe(localDoc.versions['1.0.0'].dist.integrity);
    const upstream100 = packed.find((p) => p.name === 'shared-lib' && p.version === '1.0.0')!;
    expect(merged.versions['1.0.0'].dist.integrity).not.toBe(sri(upstream100.data));
    expect(merged['dist-tags']).toEqual({ latest: '1.0.0', beta: '1.5.0-beta.0' });
    for (const v of Object.values(merged.versions) as { dist: { tarball: string } }[]) expect(v.dist.tarball.startsWith(`${srv.url}/npm-open/shared-lib/-/`)).toBe(true);

    // Each tarball downloads from the member the merged document took it from.
    const t1 = await fetch(`${srv.url}/npm-open/shared-lib/-/shared-lib-1.0.0.tgz`);
    expect(t1.headers.get('x-artifact-repo')).toBe('npm-local');
    expect(sri(Buffer.from(await t1.arrayBuffer()))).toBe(localDoc.versions['1.0.0'].dist.integrity);
    const t2 = await fetch(`${srv.url}/npm-open/shared-lib/-/shared-lib-2.0.0.tgz`);
    expect(t2.headers.get('x-artifact-repo')).toBe('npmjs');

    const proj = await s.project();
    await s.npm(['install', 'shared-lib@^2.0.0'], { cwd: proj, registry: `${srv.url}/npm-open/` });
    expect(JSON.parse(await readFile(join(proj, 'node_modules/shared-lib/package.json'), 'utf8')).version).toBe('2.0.0');

    // Without allow_shadowed, the same virtual setup shows only the local versions.
    const safe = await (await fetch(`${srv.url}/npm-all/shared-lib`)).json();
    expect(Object.keys(safe.versions).sort()).toEqual(['1.0.0', '1.5.0-beta.0']);
  });

  it('dist-tag and unpublish through the virtual URL act on its default_local', async () => {
    await s.npm(['dist-tag', 'add', 'shared-lib@1.5.0-beta.0', 'next'], { cwd: s.root, registry: virt });
    expect((await (await fetch(`${srv.url}/npm-local/shared-lib`)).json())['dist-tags'].next).toBe('1.5.0-beta.0');
    await s.npm(['unpublish', 'shared-lib@1.5.0-beta.0'], { cwd: s.root, registry: virt });
    const doc = await (await fetch(`${srv.url}/npm-local/shared-lib`)).json();
    expect(Object.keys(doc.versions)).toEqual(['1.0.0']);
    expect(await srv.svc.meta.files.get('npm-local', 'shared-lib/-/shared-lib-1.5.0-beta.0.tgz')).toBeNull();
  });

  it('refuses writes to a virtual repo without default_local', async () => {
    const r = await fetch(`${srv.url}/npm-open/-/package/shared-lib/dist-tags/x1`, { method: 'PUT', body: '"1.0.0"' });
    expect(r.status).toBe(405);
    expect(await r.json()).toEqual({ error: expect.any(String) });
  });
});
