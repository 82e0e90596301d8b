import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { which } from '../../helpers/which.js';
import { startForge, type FakeForge } from './forge.js';
import { metadataOf, moduleTgz, publish, puppetInstall, sha256hex } from './modules.js';

const run = promisify(execFile);

let srv: TestServer;
let forge: FakeForge;
const tgz: Record<string, Buffer> = {};
const versions = (page: { results: { version: string }[] }) => page.results.map((r) => r.version);
const getJson = async (url: string) => {
  const res = await fetch(url);
  return { res, body: await res.json() };
};

beforeAll(async () => {
  forge = await startForge();
  tgz.core1 = await moduleTgz(metadataOf('acme-core', '1.0.0'));
  tgz.core12 = await moduleTgz(metadataOf('acme-core', '1.2.0'));
  tgz.web = await moduleTgz(metadataOf('acme-web', '1.0.0', [{ name: 'acme-core', version_requirement: '>= 1.0.0 < 3.0.0' }]));
  tgz.legacy = await moduleTgz(metadataOf('acme-legacy', '0.1.0'));
  tgz.evil = await moduleTgz(metadataOf('acme-evil', '1.0.0'));
  forge.add({ name: 'acme-core', version: '1.0.0', metadata: metadataOf('acme-core', '1.0.0'), tgz: tgz.core1 });
  // Tarballs live wherever file_uri says, under the Forge root.
  forge.add({ name: 'acme-core', version: '1.2.0', metadata: metadataOf('acme-core', '1.2.0'), tgz: tgz.core12, fileUri: '/downloads/core/acme-core-1.2.0.tar.gz' });
  forge.add({ name: 'acme-web', version: '1.0.0', metadata: metadataOf('acme-web', '1.0.0', [{ name: 'acme-core', version_requirement: '>= 1.0.0 < 3.0.0' }]), tgz: tgz.web });
  forge.add({ name: 'acme-legacy', version: '0.1.0', metadata: metadataOf('acme-legacy', '0.1.0'), tgz: tgz.legacy, sha256: null });
  forge.add({ name: 'acme-evil', version: '1.0.0', metadata: metadataOf('acme-evil', '1.0.0'), tgz: tgz.evil, sha256: sha256hex(Buffer.from('something else')) });
  srv = await startServer({ 'remote.metadata_ttl': '5m', 'remote.upstream_timeout': '1s' });
  await srv.addRepo({ name: 'pr', format: 'puppet', kind: 'remote', upstream: forge.url });
  await srv.addRepo({ name: 'prttl', format: 'puppet', kind: 'remote', upstream: forge.url, metadata_ttl: '1s' });
  await srv.addRepo({ name: 'pvl', format: 'puppet', kind: 'local' });
  await srv.addRepo({ name: 'pv', format: 'puppet', kind: 'virtual', members: ['pvl', 'pr'] });
  await srv.addRepo({ name: 'pl1', format: 'puppet', kind: 'local' });
  await srv.addRepo({ name: 'pl2', format: 'puppet', kind: 'local' });
  await srv.addRepo({ name: 'pv2', format: 'puppet', kind: 'virtual', members: ['pl1', 'pl2'] });
});
afterAll(async () => {
  await srv?.close();
  await forge?.close();
});

describe('puppet remote repo', () => {
  it('proxies release lists as JSON, with file_uri and pagination.next rewritten to paths under the repo', async () => {
    const first = await getJson(`${srv.url}/pr/v3/releases?module=acme-core&limit=1`);
    expect(first.res.status).toBe(200);
    expect(first.res.headers.get('content-type')).toBe('application/json');
    expect(first.res.headers.get('x-artifact-source')).toBe('remote');
    expect(versions(first.body)).toEqual(['1.2.0']);
    expect(first.body.results[0].file_uri).toBe('/v3/files/acme-core-1.2.0.tar.gz');
    expect(first.body.results[0].file_sha256).toBe(sha256hex(tgz.core12));
    expect(first.body.pagination.next).toBe('/v3/releases?module=acme-core&limit=1&offset=1');
    const second = await getJson(`${srv.url}/pr${first.body.pagination.next}`);
    expect(second.res.headers.get('x-artifact-source')).toBe('cache');
    expect(versions(second.body)).toEqual(['1.0.0']);
    expect(forge.count('/v3/releases?module=acme-core')).toBe(1);
    expect(forge.hits.get('GET /v3/releases?module=acme-core&limit=100&sort_by=version')).toBe(1);
  });

  it.skipIf(!which('puppet'))('puppet module install fetches a module and its dependency through the remote, then from cache', async () => {
    const r = await puppetInstall(`${srv.url}/pr`, 'acme-web');
    expect(r.code, r.out).toBe(0);
    expect(Object.fromEntries(Object.entries(r.installed).map(([d, m]) => [d, m.version]))).toEqual({ web: '1.0.0', core: '1.2.0' });
    expect(forge.count('/downloads/core/acme-core-1.2.0.tar.gz')).toBe(1);
    expect(forge.count('/v3/files/acme-web-1.0.0.tar.gz')).toBe(1);
    const again = await puppetInstall(`${srv.url}/pr`, 'acme-web');
    expect(again.code, again.out).toBe(0);
    expect(Object.keys(again.installed).sort()).toEqual(['core', 'web']);
    expect(forge.count('/downloads/core/acme-core-1.2.0.tar.gz')).toBe(1);
    expect(forge.count('/v3/files/acme-web-1.0.0.tar.gz')).toBe(1);
  });

  it('verifies tarballs against file_md5 when that is all the upstream lists; concurrent misses share one fetch', async () => {
    const all = await Promise.all(Array.from({ length: 5 }, () => fetch(`${srv.url}/pr/v3/files/acme-legacy-0.1.0.tar.gz`)
      .then(async (res) => ({ status: res.status, body: Buffer.from(await res.arrayBuffer()) }))));
    for (const x of all) {
      expect(x.status).toBe(200);
      expect(x.body.equals(tgz.legacy)).toBe(true);
    }
    expect(forge.count('/v3/files/acme-legacy-0.1.0.tar.gz')).toBe(1);
    const rel = await getJson(`${srv.url}/pr/v3/releases/acme-legacy-0.1.0`);
    expect(rel.body.file_sha256).toBeUndefined();
    expect(rel.body.file_md5).toBe((await import('./modules.js')).md5hex(tgz.legacy));
  });

  it('a tarball that does not match its listed sha256 is cut off and not cached', async () => {
    const completed = await fetch(`${srv.url}/pr/v3/files/acme-evil-1.0.0.tar.gz`).then((res) => res.arrayBuffer().then(() => true, () => false), () => false);
    expect(completed).toBe(false);
    expect(await srv.svc.meta.files.get('pr', 'v3/files/acme-evil-1.0.0.tar.gz')).toBeNull();
    expect(await srv.svc.blob.stat(`sha256:${sha256hex(tgz.evil)}`)).toBeNull();
    const unknown = await fetch(`${srv.url}/pr/v3/files/acme-nothing-1.0.0.tar.gz`);
    expect(unknown.status).toBe(404);
  });

  it('is a proxy: publishing is 405', async () => {
    const res = await publish(`${srv.url}/pr`, tgz.core1);
    expect(res.status).toBe(405);
    expect((await res.json()).error.code).toBe('METHOD_NOT_ALLOWED');
  });
});

describe('puppet virtual repo', () => {
  beforeAll(async () => {
    // acme-core is published locally: the virtual repo must not offer the upstream's versions of it.
    tgz.core2 = await moduleTgz(metadataOf('acme-core', '2.0.0'));
    expect((await publish(`${srv.url}/pvl`, tgz.core2)).status).toBe(201);
    tgz.utilA = await moduleTgz(metadataOf('acme-util', '1.0.0'), { extra: { 'acme-util-1.0.0/README.md': 'A\n' } });
    tgz.utilB = await moduleTgz(metadataOf('acme-util', '1.0.0'), { extra: { 'acme-util-1.0.0/README.md': 'B\n' } });
    tgz.util11 = await moduleTgz(metadataOf('acme-util', '1.1.0'));
    expect((await publish(`${srv.url}/pl1`, tgz.utilA)).status).toBe(201);
    expect((await publish(`${srv.url}/pl2`, tgz.utilB)).status).toBe(201);
    expect((await publish(`${srv.url}/pl2`, tgz.util11)).status).toBe(201);
  });

  it('merges release lists; a module name published locally hides the remote versions of it', async () => {
    const core = await getJson(`${srv.url}/pv/v3/releases?module=acme-core`);
    expect(core.res.status).toBe(200);
    expect(core.res.headers.get('x-artifact-repo')).toBe('pv');
    expect(versions(core.body)).toEqual(['2.0.0']);
    const web = await getJson(`${srv.url}/pv/v3/releases?module=acme-web`);
    expect(versions(web.body)).toEqual(['1.0.0']);
    expect(web.body.results[0].file_uri).toBe('/v3/files/acme-web-1.0.0.tar.gz');
    const mod = await getJson(`${srv.url}/pv/v3/modules/acme-core`);
    expect(mod.body.current_release.version).toBe('2.0.0');
    expect(mod.body.releases.map((r: { version: string }) => r.version)).toEqual(['2.0.0']);
    // The shadowed remote version is not served through the virtual repo.
    expect((await fetch(`${srv.url}/pv/v3/files/acme-core-1.2.0.tar.gz`)).status).toBe(404);
    expect((await fetch(`${srv.url}/pv/v3/releases/acme-core-1.2.0`)).status).toBe(404);
    const file = await fetch(`${srv.url}/pv/v3/files/acme-web-1.0.0.tar.gz`);
    expect(file.status).toBe(200);
    expect(file.headers.get('x-artifact-repo')).toBe('pr');
    expect(Buffer.from(await file.arrayBuffer()).equals(tgz.web)).toBe(true);
  });

  it('the first member wins per version', async () => {
    const list = await getJson(`${srv.url}/pv2/v3/releases?module=acme-util`);
    expect(versions(list.body)).toEqual(['1.1.0', '1.0.0']);
    expect(list.body.results[1].file_sha256).toBe(sha256hex(tgz.utilA));
    const a = await fetch(`${srv.url}/pv2/v3/files/acme-util-1.0.0.tar.gz`);
    expect(a.headers.get('x-artifact-repo')).toBe('pl1');
    expect(Buffer.from(await a.arrayBuffer()).equals(tgz.utilA)).toBe(true);
    const b = await fetch(`${srv.url}/pv2/v3/files/acme-util-1.1.0.tar.gz`);
    expect(b.headers.get('x-artifact-repo')).toBe('pl2');
    const rel = await getJson(`${srv.url}/pv2/v3/releases/acme-util-1.0.0`);
    expect(rel.res.headers.get('x-artifact-repo')).toBe('pv2');
    expect(rel.body.file_sha256).toBe(sha256hex(tgz.utilA));
    expect((await publish(`${srv.url}/pv2`, tgz.core1)).status).toBe(405);
  });

  it.skipIf(!which('puppet'))('puppet module install through the virtual repo takes the local dependency and the remote module', async () => {
    const r = await puppetInstall(`${srv.url}/pv`, 'acme-web');
    expect(r.code, r.out).toBe(0);
    expect(Object.fromEntries(Object.entries(r.installed).map(([d, m]) => [d, m.version]))).toEqual({ web: '1.0.0', core: '2.0.0' });
  });

  it.skipIf(!which('r10k') || !which('git'))('r10k deploy environment installs the Puppetfile modules from the virtual repo', async () => {
    const d = await mkdtemp(join(tmpdir(), 'r10k-'));
    try {
      const control = join(d, 'control');
      await mkdir(control);
      await writeFile(join(control, 'Puppetfile'), `forge "${srv.url}/pv"\n\nmod 'acme-web', '1.0.0'\nmod 'acme-core', :latest\n`);
      const git = (...args: string[]) => run('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.org', '-c', 'init.defaultBranch=production', ...args], { cwd: control });
      await git('init', '-q');
      await git('add', 'Puppetfile');
      await git('commit', '-qm', 'Puppetfile');
      await writeFile(join(d, 'r10k.yaml'), [
        `cachedir: ${join(d, 'cache')}`, 'sources:', '  main:', `    remote: ${control}`, `    basedir: ${join(d, 'envs')}`,
        'forge:', '  allow_puppetfile_override: true', '',
      ].join('\n'));
      const res = await run('r10k', ['deploy', 'environment', 'production', '--modules', '--config', join(d, 'r10k.yaml')], { timeout: 90_000 })
        .catch((err: { stdout?: string; stderr?: string }) => ({ stdout: err.stdout ?? '', stderr: `${err.stderr ?? ''} FAILED` }));
      expect(res.stderr).not.toMatch(/FAILED|ERROR/);
      const meta = async (m: string) => JSON.parse(await readFile(join(d, 'envs', 'production', 'modules', m, 'metadata.json'), 'utf8'));
      expect((await meta('web')).version).toBe('1.0.0');
      expect((await meta('core')).version).toBe('2.0.0');
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });
});

describe('puppet remote repo with the upstream down', () => {
  it('serves cached documents and tarballs stale; 502 for what was never fetched', async () => {
    expect((await fetch(`${srv.url}/prttl/v3/releases?module=acme-core`)).status).toBe(200);
    expect((await fetch(`${srv.url}/prttl/v3/files/acme-core-1.2.0.tar.gz`).then((r) => r.arrayBuffer()))).toBeTruthy();
    forge.down = true;
    try {
      await new Promise((r) => setTimeout(r, 1100));
      const list = await getJson(`${srv.url}/prttl/v3/releases?module=acme-core`);
      expect(list.res.status).toBe(200);
      expect(list.res.headers.get('x-artifact-stale')).toBe('true');
      expect(versions(list.body)).toEqual(['1.2.0', '1.0.0']);
      const file = await fetch(`${srv.url}/prttl/v3/files/acme-core-1.2.0.tar.gz`);
      expect(file.status).toBe(200);
      expect(Buffer.from(await file.arrayBuffer()).equals(tgz.core12)).toBe(true);
      const never = await fetch(`${srv.url}/prttl/v3/releases?module=acme-never`);
      expect(never.status).toBe(502);
      expect((await never.json()).error.code).toBe('UPSTREAM_FAILED');
    } finally {
      forge.down = false;
    }
  });
});
