import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { which } from '../../helpers/which.js';
import { chain, downloadAndBuild, escapePath, goEnv, modVersion, zipOf, type GoEnv, type ZipFileSpec } from './gomod.js';

const HAS_GO = which('go');

describe('goproxy local', () => {
  let server: TestServer;
  const envs: GoEnv[] = [];
  const { mods, app, output } = chain();

  const put = (repo: string, mod: string, version: string, body: Buffer) =>
    fetch(`${server.url}/${repo}/${escapePath(mod)}/@v/${version}.zip`, { method: 'PUT', body: new Uint8Array(body) });

  beforeEach(async () => {
    server = await startServer();
    await server.addRepo({ name: 'go-local', format: 'goproxy', kind: 'local' });
  });

  afterEach(async () => {
    for (const e of envs.splice(0)) await e.close();
    await server.close();
  });

  it.skipIf(!HAS_GO)('uploads, then go mod download and go build through the local repo; .info/.mod derived, list and @latest from rows', async () => {
    const before = Date.now();
    for (const m of mods) {
      const r = await put('go-local', m.path, m.version, m.zip);
      const body = await r.json();
      expect(r.status, JSON.stringify(body)).toBe(201);
      expect(body).toMatchObject({ repo: 'go-local', module: m.path, version: m.version, size: m.zip.length });
    }
    const go = await goEnv(`${server.url}/go-local`);
    envs.push(go);
    expect(await downloadAndBuild(go, app)).toMatchObject({ download: { code: 0, stderr: '' }, build: { code: 0, errors: [] }, output });

    const base = `${server.url}/go-local/example.com/greet`;
    const list = await fetch(`${base}/@v/list`);
    expect(list.headers.get('x-artifact-source')).toBe('local');
    expect(await list.text()).toBe('v1.0.0\nv1.1.0\n');
    const info = await (await fetch(`${base}/@v/v1.1.0.info`)).json();
    expect(info.Version).toBe('v1.1.0');
    expect(Date.parse(info.Time)).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(Date.parse(info.Time)).toBeLessThanOrEqual(Date.now());
    const greet1 = mods.find((m) => m.path === 'example.com/greet' && m.version === 'v1.1.0')!;
    expect(await (await fetch(`${base}/@v/v1.1.0.mod`)).text()).toBe(greet1.goMod);
    const zip = await fetch(`${base}/@v/v1.1.0.zip`);
    expect(zip.headers.get('content-type')).toBe('application/zip');
    expect(Buffer.from(await zip.arrayBuffer()).equals(greet1.zip)).toBe(true);
    const latest = await fetch(`${base}/@latest`);
    expect(await latest.json()).toEqual(info);
    expect((await fetch(`${server.url}/go-local/example.com/%21upper/@v/list`).then((r) => r.text()))).toBe('v1.0.0\n');

    // The same version twice: 409; the first stays.
    const again = await put('go-local', greet1.path, greet1.version, mods[1].zip);
    expect(again.status).toBe(409);
    expect((await again.json()).error.code).toBe('CONFLICT');
    expect(Buffer.from(await (await fetch(`${base}/@v/v1.1.0.zip`)).arrayBuffer()).equals(greet1.zip)).toBe(true);

    // Delete takes .zip, .mod and .info together.
    const del = await fetch(`${base}/@v/v1.0.0.zip`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect(await (await fetch(`${base}/@v/list`)).text()).toBe('v1.1.0\n');
    expect((await fetch(`${base}/@v/v1.0.0.info`)).status).toBe(404);
    expect((await fetch(`${base}/@v/v1.0.0.mod`)).status).toBe(404);
  });

  const files = (prefix: string, extra: ZipFileSpec[] = [], goMod = 'module example.com/bad\n\ngo 1.19\n'): ZipFileSpec[] => [
    { name: `${prefix}/go.mod`, body: goMod }, { name: `${prefix}/bad.go`, body: 'package bad\n' }, ...extra,
  ];

  it('module zip rules: each refusal is 400 with the reason, and nothing is listed', async () => {
    const p = 'example.com/bad@v1.0.0';
    const cases: [string, string, Buffer, RegExp][] = [
      ['v1.0.0', 'outside the prefix', zipOf([...files(p), { name: 'example.com/other@v1.0.0/x.go', body: 'package x\n' }]), /does not have prefix "example\.com\/bad@v1\.0\.0\/"/],
      ['v1.0.0', '..', zipOf(files(p, [{ name: `${p}/../evil.go`, body: 'package evil\n' }])), /escapes the module directory/],
      ['v1.0.0', 'symlink', zipOf(files(p, [{ name: `${p}/link`, body: '/etc/passwd', mode: 0o120777 }])), /not a regular file/],
      ['v1.0.0', 'case-fold', zipOf(files(p, [{ name: `${p}/A.go`, body: 'package bad\n' }, { name: `${p}/a.go`, body: 'package bad\n' }])), /case-insensitive file name collision/],
      ['v1.0.0', 'go.mod mismatch', zipOf(files(p, [], 'module example.com/other\n')), /go\.mod declares module example\.com\/other/],
      ['v1.0.0', 'no go.mod', zipOf([{ name: `${p}/bad.go`, body: 'package bad\n' }]), /no go\.mod/],
      ['v1.0', 'short version', zipOf(files('example.com/bad@v1.0')), /not a canonical semantic version/],
      ['v2.0.0', 'major without /v2', zipOf(files('example.com/bad@v2.0.0')), /needs the module path to end in \/v2/],
      ['v1.0.0+incompatible', 'incompatible v1', zipOf(files('example.com/bad@v1.0.0+incompatible')), /only allowed on major versions 2/],
      ['v1.0.0', 'not a zip', Buffer.from('this is not a zip file at all'), /not a zip/i],
    ];
    for (const [version, what, body, reason] of cases) {
      const r = await put('go-local', 'example.com/bad', version, body);
      const err = await r.json();
      expect(r.status, what).toBe(400);
      expect(err.error.code, what).toBe('BAD_REQUEST');
      expect(err.error.message, what).toMatch(reason);
    }
    expect((await fetch(`${server.url}/go-local/example.com/bad/@v/list`)).status).toBe(404);
    expect((await fetch(`${server.url}/go-local/example.com/bad/@v/v1.0.0.info`)).status).toBe(404);

    // Upper case in the URL is not case-encoded; a module path without a dot is no module path.
    expect((await fetch(`${server.url}/go-local/example.com/Bad/@v/v1.0.0.zip`, { method: 'PUT', body: 'x' })).status).toBe(400);
    expect((await fetch(`${server.url}/go-local/nodot/@v/v1.0.0.zip`, { method: 'PUT', body: 'x' })).status).toBe(400);
  });

  it('major versions: /v2 paths, +incompatible without go.mod (.mod synthesized), +incompatible with a go.mod refused', async () => {
    const v2 = modVersion('example.com/lib/v2', 'v2.1.0', { 'lib.go': 'package lib\n' });
    expect((await put('go-local', v2.path, v2.version, v2.zip)).status).toBe(201);
    const inc = zipOf([{ name: 'example.com/old@v3.0.0+incompatible/old.go', body: 'package old\n' }]);
    const r = await put('go-local', 'example.com/old', 'v3.0.0+incompatible', inc);
    expect(r.status).toBe(201);
    expect(await (await fetch(`${server.url}/go-local/example.com/old/@v/v3.0.0+incompatible.mod`)).text()).toBe('module example.com/old\n');
    expect(await (await fetch(`${server.url}/go-local/example.com/old/@v/list`)).text()).toBe('v3.0.0+incompatible\n');
    const withMod = modVersion('example.com/old', 'v4.0.0+incompatible', { 'old.go': 'package old\n' });
    const refused = await put('go-local', 'example.com/old', 'v4.0.0+incompatible', withMod.zip);
    expect(refused.status).toBe(400);
    expect((await refused.json()).error.message).toMatch(/\+incompatible.*go\.mod/);
  });
});
