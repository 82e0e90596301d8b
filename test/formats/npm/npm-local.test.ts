import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, SUITE_TOKEN, type TestServer } from '../../helpers/server.js';
import { HAVE_NPM, NpmScratch } from './npm-helpers.js';

describe.skipIf(!HAVE_NPM)('npm local repository with the real npm client', () => {
  let srv: TestServer;
  let s: NpmScratch;
  let registry: string;

  beforeAll(async () => {
    srv = await startServer();
    s = await NpmScratch.create();
    await srv.addRepo({ name: 'npm-local', format: 'npm', kind: 'local' });
    registry = `${srv.url}/npm-local/`;
  });
  afterAll(async () => {
    await srv?.close();
    await s?.cleanup();
  });

  it('publishes unscoped and scoped packages, serves them to npm view and npm install', async () => {
    const dep = await s.makePackage({ name: 'local-dep', version: '1.0.0' });
    // The token given on the command line, as `npm publish --//HOST/REPO/:_authToken=x`.
    await s.npm(['publish', `--//${srv.host}/npm-local/:_authToken=${SUITE_TOKEN}`], { cwd: dep, registry, tokenInConfig: false });
    const main = await s.makePackage({ name: '@acme/widget', version: '1.0.0', dependencies: { 'local-dep': '^1.0.0' } });
    await s.npm(['publish', '--access', 'public'], { cwd: main, registry });

    const view = await s.npm(['view', '@acme/widget', '--json'], { cwd: s.root, registry });
    const info = JSON.parse(view.stdout);
    expect(info.name).toBe('@acme/widget');
    expect(info.version).toBe('1.0.0');
    expect(info.dist.tarball).toBe(`${srv.url}/npm-local/@acme/widget/-/widget-1.0.0.tgz`);
    expect(info.dist.integrity).toMatch(/^sha512-/);

    // The packument is served for both spellings of a scoped name.
    for (const p of ['@acme%2fwidget', '@acme/widget', '@acme%2Fwidget']) {
      const r = await fetch(`${srv.url}/npm-local/${p}`);
      expect(r.status).toBe(200);
      expect(r.headers.get('x-artifact-source')).toBe('local');
      expect((await r.json()).versions['1.0.0'].dependencies).toEqual({ 'local-dep': '^1.0.0' });
    }

    const proj = await s.project();
    await s.npm(['install', '@acme/widget'], { cwd: proj, registry });
    const installed = JSON.parse(await readFile(join(proj, 'node_modules/@acme/widget/package.json'), 'utf8'));
    expect(installed.version).toBe('1.0.0');
    expect(await readFile(join(proj, 'node_modules/local-dep/index.js'), 'utf8')).toContain('local-dep@1.0.0');
    const lock = JSON.parse(await readFile(join(proj, 'package-lock.json'), 'utf8'));
    expect(lock.packages['node_modules/@acme/widget'].integrity).toBe(info.dist.integrity);
  });

  it('serves the abbreviated packument on request, with Vary and a working ETag', async () => {
    const r = await fetch(`${srv.url}/npm-local/@acme%2fwidget`, { headers: { accept: 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*' } });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('application/vnd.npm.install-v1+json');
    expect(r.headers.get('vary')).toMatch(/accept/i);
    const body = await r.json();
    expect(Object.keys(body).sort()).toEqual(['dist-tags', 'modified', 'name', 'versions']);
    expect(body.versions['1.0.0'].dist.tarball).toBe(`${srv.url}/npm-local/@acme/widget/-/widget-1.0.0.tgz`);
    expect(body.versions['1.0.0'].readme).toBeUndefined();
    const full = await fetch(`${srv.url}/npm-local/@acme%2fwidget`);
    expect(full.headers.get('etag')).not.toBe(r.headers.get('etag'));
    const again = await fetch(`${srv.url}/npm-local/@acme%2fwidget`, { headers: { 'if-none-match': full.headers.get('etag')! } });
    expect(again.status).toBe(304);
  });

  it('stores the tarball in the CAS as published and serves it with the contract headers', async () => {
    const packed = await s.pack(await s.makePackage({ name: 'local-dep', version: '1.0.0' }, 'again'));
    const r = await fetch(`${srv.url}/npm-local/local-dep/-/local-dep-1.0.0.tgz`);
    expect(r.status).toBe(200);
    expect(r.headers.get('x-artifact-source')).toBe('local');
    const bytes = Buffer.from(await r.arrayBuffer());
    const doc = await (await fetch(`${srv.url}/npm-local/local-dep`)).json();
    expect(`sha512-${createHash('sha512').update(bytes).digest('base64')}`).toBe(doc.versions['1.0.0'].dist.integrity);
    expect(r.headers.get('etag')).toBe(`"${createHash('sha256').update(bytes).digest('hex')}"`);
    // npm pack is deterministic: the same package packed again is the tarball npm publish sent
    expect(bytes.equals(packed.data)).toBe(true);
  });

  it('manages dist-tags with npm dist-tag add/ls/rm', async () => {
    const v2 = await s.makePackage({ name: 'local-dep', version: '2.0.0-beta.1' });
    await s.npm(['publish', '--tag', 'beta'], { cwd: v2, registry });
    let doc = await (await fetch(`${srv.url}/npm-local/local-dep`)).json();
    expect(doc['dist-tags']).toEqual({ latest: '1.0.0', beta: '2.0.0-beta.1' });

    await s.npm(['dist-tag', 'add', 'local-dep@2.0.0-beta.1', 'next'], { cwd: s.root, registry });
    const ls = await s.npm(['dist-tag', 'ls', 'local-dep'], { cwd: s.root, registry });
    expect(ls.stdout).toContain('next: 2.0.0-beta.1');
    expect(ls.stdout).toContain('latest: 1.0.0');
    await s.npm(['dist-tag', 'rm', 'local-dep', 'beta'], { cwd: s.root, registry });
    doc = await (await fetch(`${srv.url}/npm-local/local-dep`)).json();
    expect(doc['dist-tags']).toEqual({ latest: '1.0.0', next: '2.0.0-beta.1' });

    const tags = await (await fetch(`${srv.url}/npm-local/-/package/local-dep/dist-tags`)).json();
    expect(tags).toEqual({ latest: '1.0.0', next: '2.0.0-beta.1' });
    const bad = await fetch(`${srv.url}/npm-local/-/package/local-dep/dist-tags/nightly`, { method: 'PUT', body: JSON.stringify('9.9.9'), headers: { 'content-type': 'application/json' } });
    expect(bad.status).toBe(404);
    expect(await bad.json()).toEqual({ error: expect.stringContaining('9.9.9') });
  });

  it('marks and clears deprecation with npm deprecate', async () => {
    await s.npm(['deprecate', 'local-dep@1.0.0', 'use 2.x'], { cwd: s.root, registry });
    let doc = await (await fetch(`${srv.url}/npm-local/local-dep`)).json();
    expect(doc.versions['1.0.0'].deprecated).toBe('use 2.x');
    const ab = await (await fetch(`${srv.url}/npm-local/local-dep`, { headers: { accept: 'application/vnd.npm.install-v1+json' } })).json();
    expect(ab.versions['1.0.0'].deprecated).toBe('use 2.x');
    await s.npm(['deprecate', 'local-dep@1.0.0', ''], { cwd: s.root, registry });
    doc = await (await fetch(`${srv.url}/npm-local/local-dep`)).json();
    expect(doc.versions['1.0.0'].deprecated).toBeUndefined();
    expect(Object.keys(doc.versions).sort()).toEqual(['1.0.0', '2.0.0-beta.1']);
  });

  it('refuses to publish the same version twice (raw PUT) and keeps the original', async () => {
    const before = Buffer.from(await (await fetch(`${srv.url}/npm-local/local-dep/-/local-dep-1.0.0.tgz`)).arrayBuffer());
    const other = await s.pack(await s.makePackage({ name: 'local-dep', version: '1.0.0', description: 'different bytes' }, 'dup'));
    const integrity = `sha512-${createHash('sha512').update(other.data).digest('base64')}`;
    const body = {
      _id: 'local-dep', name: 'local-dep', 'dist-tags': { latest: '1.0.0' },
      versions: { '1.0.0': { name: 'local-dep', version: '1.0.0', dist: { integrity, shasum: createHash('sha1').update(other.data).digest('hex'), tarball: `${registry}local-dep/-/local-dep-1.0.0.tgz` } } },
      _attachments: { 'local-dep-1.0.0.tgz': { content_type: 'application/octet-stream', data: other.data.toString('base64'), length: other.data.length } },
    };
    const r = await fetch(`${srv.url}/npm-local/local-dep`, { method: 'PUT', body: JSON.stringify(body), headers: { 'content-type': 'application/json', authorization: `Bearer ${SUITE_TOKEN}` } });
    expect(r.status).toBe(409);
    expect((await r.json()).error).toMatch(/previously published/);
    const after = Buffer.from(await (await fetch(`${srv.url}/npm-local/local-dep/-/local-dep-1.0.0.tgz`)).arrayBuffer());
    expect(after.equals(before)).toBe(true);

    // npm itself refuses too (it checks before sending).
    const cli = await s.npm(['publish'], { cwd: await s.makePackage({ name: 'local-dep', version: '1.0.0' }, 'dup2'), registry, reject: false });
    expect(cli.exitCode).not.toBe(0);
  });

  it('refuses a tarball that does not match dist.integrity, storing nothing', async () => {
    const packed = await s.pack(await s.makePackage({ name: 'bad-integrity', version: '1.0.0' }));
    const body = {
      name: 'bad-integrity', 'dist-tags': { latest: '1.0.0' },
      versions: { '1.0.0': { name: 'bad-integrity', version: '1.0.0', dist: { integrity: `sha512-${createHash('sha512').update('other').digest('base64')}` } } },
      _attachments: { 'bad-integrity-1.0.0.tgz': { data: packed.data.toString('base64'), length: packed.data.length } },
    };
    const r = await fetch(`${srv.url}/npm-local/bad-integrity`, { method: 'PUT', body: JSON.stringify(body) });
    expect(r.status).toBe(400);
    expect((await fetch(`${srv.url}/npm-local/bad-integrity`)).status).toBe(404);
    expect(await srv.svc.meta.files.get('npm-local', 'bad-integrity/-/bad-integrity-1.0.0.tgz')).toBeNull();
  });

  it('unpublishes one version with npm unpublish, then the whole package', async () => {
    const v11 = await s.makePackage({ name: 'local-dep', version: '1.1.0' });
    await s.npm(['publish'], { cwd: v11, registry });
    let doc = await (await fetch(`${srv.url}/npm-local/local-dep`)).json();
    expect(doc['dist-tags'].latest).toBe('1.1.0');

    await s.npm(['unpublish', 'local-dep@1.1.0'], { cwd: s.root, registry });
    doc = await (await fetch(`${srv.url}/npm-local/local-dep`)).json();
    expect(Object.keys(doc.versions).sort()).toEqual(['1.0.0', '2.0.0-beta.1']);
    // npm moves latest to the highest remaining version itself (semver.compareLoose puts 2.0.0-beta.1 last).
    expect(doc['dist-tags'].latest).toBe('2.0.0-beta.1');
    expect((await fetch(`${srv.url}/npm-local/local-dep/-/local-dep-1.1.0.tgz`)).status).toBe(404);
    expect((await fetch(`${srv.url}/npm-local/local-dep/-/local-dep-1.0.0.tgz`)).status).toBe(200);

    const solo = await s.makePackage({ name: 'solo-pkg', version: '0.1.0' });
    await s.npm(['publish'], { cwd: solo, registry });
    await s.npm(['unpublish', 'solo-pkg@0.1.0', '--force'], { cwd: s.root, registry });
    expect((await fetch(`${srv.url}/npm-local/solo-pkg`)).status).toBe(404);
    expect((await fetch(`${srv.url}/npm-local/solo-pkg/-/solo-pkg-0.1.0.tgz`)).status).toBe(404);
  });

  it('publishes a package larger than limits.metadata_body (publish bodies have their own cap)', async () => {
    const dir = await s.makePackage({ name: 'big-pkg', version: '1.0.0' });
    const { randomBytes } = await import('node:crypto');
    const { writeFile } = await import('node:fs/promises');
    const blob = randomBytes(6 * 1024 * 1024);
    await writeFile(join(dir, 'blob.bin'), blob);
    await s.npm(['publish'], { cwd: dir, registry });
    const proj = await s.project();
    await s.npm(['install', 'big-pkg'], { cwd: proj, registry });
    expect((await readFile(join(proj, 'node_modules/big-pkg/blob.bin'))).equals(blob)).toBe(true);
  });

  it('refuses a publish body over limits.publish_body with 413', async () => {
    const small = await startServer({ 'limits.publish_body': '2KiB' });
    try {
      await small.addRepo({ name: 'npm-local', format: 'npm', kind: 'local' });
      const body = JSON.stringify({ name: 'big', versions: {}, _attachments: { 'big-1.0.0.tgz': { data: Buffer.alloc(4096).toString('base64') } } });
      const r = await fetch(`${small.url}/npm-local/big`, { method: 'PUT', body });
      expect(r.status).toBe(413);
      expect(await r.json()).toEqual({ error: expect.any(String) });
    } finally {
      await small.close();
    }
  });

  it('answers unknown packages and writes to nowhere in npm error shape', async () => {
    const r = await fetch(`${srv.url}/npm-local/nope-nothing`);
    expect(r.status).toBe(404);
    expect(await r.json()).toEqual({ error: expect.any(String) });
    const bad = await fetch(`${srv.url}/npm-local/..%2f..%2fetc`);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: expect.any(String) });
  });
});
