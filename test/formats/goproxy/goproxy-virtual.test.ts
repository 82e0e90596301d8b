import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { startUpstream, type FakeUpstream } from '../../helpers/upstream.js';
import { which } from '../../helpers/which.js';
import { chain, downloadAndBuild, escapePath, goEnv, goProxyHandler, modVersion, type GoEnv } from './gomod.js';

const HAS_GO = which('go');

describe('goproxy virtual', () => {
  let server: TestServer;
  let a: FakeUpstream;
  let b: FakeUpstream;
  const envs: GoEnv[] = [];
  const { mods, app, output } = chain();
  const hello = mods.find((m) => m.path === 'example.com/hello')!;
  // Upstream A: the chain, plus a hello version the local repo does not have (shadowed).
  const helloOld = modVersion('example.com/hello', 'v0.9.0', { 'hello.go': 'package hello\n\nfunc Hello() string { return "old" }\n' });
  // Upstream B: other greet versions (sorted by semver, not as text) and its own greet v1.1.0 (A's wins).
  const greetB = ['v1.2.0', 'v1.10.0'].map((v) => modVersion('example.com/greet', v, { 'greet.go': 'package greet\n' }));
  const greet11B = modVersion('example.com/greet', 'v1.1.0', { 'greet.go': 'package greet\n\nfunc Greeting() string { return "from B" }\n' }, {}, '2030-01-01T00:00:00Z');

  beforeEach(async () => {
    a = await startUpstream(goProxyHandler([...mods.filter((m) => m !== hello), helloOld]));
    b = await startUpstream(goProxyHandler([greet11B, ...greetB]));
    server = await startServer();
    await server.addRepo({ name: 'go-local', format: 'goproxy', kind: 'local' });
    await server.addRepo({ name: 'go-a', format: 'goproxy', kind: 'remote', upstream: a.url });
    await server.addRepo({ name: 'go-b', format: 'goproxy', kind: 'remote', upstream: b.url });
    await server.addRepo({ name: 'go-all', format: 'goproxy', kind: 'virtual', members: ['go-local', 'go-a', 'go-b'] });
    await server.addRepo({ name: 'go-open', format: 'goproxy', kind: 'virtual', members: ['go-local', 'go-a'], allow_shadowed: ['example.com/hello'] });
    const r = await fetch(`${server.url}/go-local/${escapePath(hello.path)}/@v/${hello.version}.zip`, { method: 'PUT', body: new Uint8Array(hello.zip) });
    expect(r.status).toBe(201);
  });

  afterEach(async () => {
    for (const e of envs.splice(0)) await e.close();
    await server.close();
    await a.close();
    await b.close();
  });

  it.skipIf(!HAS_GO)('go mod download and go build through a virtual over a local and two remotes', async () => {
    const go = await goEnv(`${server.url}/go-all`);
    envs.push(go);
    expect(await downloadAndBuild(go, app)).toMatchObject({ download: { code: 0, stderr: '' }, build: { code: 0, errors: [] }, output });
    // hello from the local member (A is asked its list, for the merge, never a file), greet v1.1.0 from A, never B's.
    expect(a.count('/example.com/hello/@v/v')).toBe(0);
    expect(b.count('/example.com/greet/@v/v1.1.0.zip')).toBe(0);
    expect(a.count('/example.com/greet/@v/v1.1.0.zip')).toBe(1);
  });

  it('list union sorted by semver, first member wins per version, local modules shadow remote ones unless allow-listed', async () => {
    const list = await fetch(`${server.url}/go-all/example.com/greet/@v/list`);
    expect(list.status).toBe(200);
    expect(await list.text()).toBe('v1.0.0\nv1.1.0\nv1.2.0\nv1.10.0\n');
    const info = await fetch(`${server.url}/go-all/example.com/greet/@v/v1.1.0.info`);
    expect(info.headers.get('x-artifact-repo')).toBe('go-a');
    expect(await info.json()).toEqual({ Version: 'v1.1.0', Time: '2024-01-02T03:04:05Z' });
    const fromB = await fetch(`${server.url}/go-all/example.com/greet/@v/v1.10.0.mod`);
    expect(fromB.headers.get('x-artifact-repo')).toBe('go-b');
    expect(await fromB.text()).toBe(greetB[1].goMod);
    const latest = await fetch(`${server.url}/go-all/example.com/greet/@latest`);
    expect((await latest.json()).Version).toBe('v1.10.0');

    // hello is published locally: A's v0.9.0 is neither listed nor served.
    expect(await (await fetch(`${server.url}/go-all/example.com/hello/@v/list`)).text()).toBe('v1.0.0\n');
    const zip = await fetch(`${server.url}/go-all/example.com/hello/@v/v1.0.0.zip`);
    expect(zip.headers.get('x-artifact-repo')).toBe('go-local');
    expect(zip.headers.get('x-artifact-source')).toBe('local');
    expect(Buffer.from(await zip.arrayBuffer()).equals(hello.zip)).toBe(true);
    expect((await fetch(`${server.url}/go-all/example.com/hello/@v/v0.9.0.info`)).status).toBe(404);
    expect((await fetch(`${server.url}/go-all/example.com/hello/@v/v0.9.0.zip`)).status).toBe(404);
    expect(a.count('/example.com/hello/@v/v0.9.0')).toBe(0);
    expect((await (await fetch(`${server.url}/go-all/example.com/hello/@latest`)).json()).Version).toBe('v1.0.0');

    // Allow-listed: the union again, and the remote version is served.
    expect(await (await fetch(`${server.url}/go-open/example.com/hello/@v/list`)).text()).toBe('v0.9.0\nv1.0.0\n');
    const old = await fetch(`${server.url}/go-open/example.com/hello/@v/v0.9.0.mod`);
    expect(old.status).toBe(200);
    expect(old.headers.get('x-artifact-repo')).toBe('go-a');
    expect(await old.text()).toBe(helloOld.goMod);

    // Unknown everywhere: 404 (so go moves on to the next GOPROXY entry).
    expect((await fetch(`${server.url}/go-all/example.com/nothing/@v/list`)).status).toBe(404);
    expect((await fetch(`${server.url}/go-all/example.com/nothing/@latest`)).status).toBe(404);
    expect((await fetch(`${server.url}/go-all/example.com/greet/@v/v9.0.0.zip`)).status).toBe(404);
    // Writes go to no member of a virtual repo without default_local.
    expect((await fetch(`${server.url}/go-all/example.com/x/@v/v1.0.0.zip`, { method: 'PUT', body: 'x' })).status).toBe(405);
  });

  it('through a nested virtual, a module a local member publishes is never completed from a remote, listed or not', async () => {
    await server.addRepo({ name: 'go-inner', format: 'goproxy', kind: 'virtual', members: ['go-a'] });
    await server.addRepo({ name: 'go-nest', format: 'goproxy', kind: 'virtual', members: ['go-local', 'go-inner'] });
    // The inner virtual alone serves A's hello v0.9.0.
    expect(await (await fetch(`${server.url}/go-inner/example.com/hello/@v/list`)).text()).toBe('v0.9.0\n');
    expect((await fetch(`${server.url}/go-inner/example.com/hello/@v/v0.9.0.mod`)).status).toBe(200);
    const before = a.count('/example.com/hello/@v/v0.9.0');
    expect(await (await fetch(`${server.url}/go-nest/example.com/hello/@v/list`)).text()).toBe('v1.0.0\n');
    for (const ext of ['info', 'mod', 'zip']) expect((await fetch(`${server.url}/go-nest/example.com/hello/@v/v0.9.0.${ext}`)).status, ext).toBe(404);
    expect(a.count('/example.com/hello/@v/v0.9.0')).toBe(before);
    const zip = await fetch(`${server.url}/go-nest/example.com/hello/@v/v1.0.0.zip`);
    expect(zip.status).toBe(200);
    expect(zip.headers.get('x-artifact-repo')).toBe('go-local');
    // A module no local member publishes still comes through the nested remote.
    const greet = await fetch(`${server.url}/go-nest/example.com/greet/@v/v1.1.0.info`);
    expect(greet.status).toBe(200);
    expect(greet.headers.get('x-artifact-repo')).toBe('go-a');
  });
});
