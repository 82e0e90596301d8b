import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { startUpstream, type FakeUpstream } from '../../helpers/upstream.js';
import { buildFixtureRpms, dnf, HAVE_CREATEREPO, HAVE_DNF, HAVE_RPMBUILD, packageBlocks, locations, readRepodata, serveDir, tempDir } from './rpms.js';

const LIB = 'hello-lib-1.2.0-3.noarch.rpm';
const TOOL = 'hello-tool-2.0-1.noarch.rpm';
const LIB_REMOTE = 'hello-lib-9.9.9-1.noarch.rpm';

let srv: TestServer;
let upstream: FakeUpstream;
/** A public mirror that offers a hello-lib of another version than the local one (dependency confusion). */
let mirror: FakeUpstream;
let dir: string;
let rpms: Map<string, Buffer>;

/** A hello-lib of another version than the local one, as a public mirror might offer it. */
function buildRemoteLib(d: string): Buffer {
  const spec = join(d, 'hello-lib-remote.spec');
  writeFileSync(spec, 'Name: hello-lib\nVersion: 9.9.9\nRelease: 1\nSummary: not ours\nLicense: MIT\nBuildArch: noarch\n\n%description\nnot ours\n\n%files\n');
  const top = join(d, 'rpmbuild-remote');
  execFileSync('rpmbuild', ['-bb', '--quiet', '--define', `_topdir ${top}`, spec], { stdio: 'pipe' });
  const out = join(top, 'RPMS', 'noarch');
  return readFileSync(join(out, readdirSync(out)[0]));
}

beforeAll(async () => {
  dir = tempDir();
  const updir = join(dir, 'upstream');
  const mirrordir = join(dir, 'mirror');
  mkdirSync(join(updir, 'Packages'), { recursive: true });
  if (HAVE_RPMBUILD && HAVE_CREATEREPO) {
    rpms = buildFixtureRpms(dir);
    for (const f of [LIB, TOOL]) writeFileSync(join(updir, 'Packages', f), rpms.get(f)!);
    execFileSync('createrepo_c', ['-q', '--no-database', updir], { stdio: 'pipe' });
    mkdirSync(join(mirrordir, 'Packages'), { recursive: true });
    writeFileSync(join(mirrordir, 'Packages', LIB_REMOTE), buildRemoteLib(dir));
    writeFileSync(join(mirrordir, 'Packages', TOOL), rpms.get(TOOL)!);
    execFileSync('createrepo_c', ['-q', '--no-database', mirrordir], { stdio: 'pipe' });
  }
  upstream = await startUpstream(serveDir(updir));
  mirror = await startUpstream(serveDir(mirrordir));
  srv = await startServer({ 'remote.metadata_ttl': '1s' });
  await srv.addRepo({ name: 'vl', format: 'rpm', kind: 'local' });
  await srv.addRepo({ name: 'vr', format: 'rpm', kind: 'remote', upstream: `${upstream.url}/` });
  await srv.addRepo({ name: 'vv', format: 'rpm', kind: 'virtual', members: ['vl', 'vr'] });
  await srv.addRepo({ name: 'vouter', format: 'rpm', kind: 'virtual', members: ['vv'] });
  await srv.addRepo({ name: 'sl', format: 'rpm', kind: 'local' });
  await srv.addRepo({ name: 'sr', format: 'rpm', kind: 'remote', upstream: `${mirror.url}/` });
  await srv.addRepo({ name: 'sinner', format: 'rpm', kind: 'virtual', members: ['sr'] });
  await srv.addRepo({ name: 'sv', format: 'rpm', kind: 'virtual', members: ['sl', 'sinner'] });
  await srv.addRepo({ name: 'sopen', format: 'rpm', kind: 'virtual', members: ['sl', 'sinner'], allow_shadowed: ['hello-lib'] });
});
afterAll(async () => {
  await srv?.close();
  await upstream?.close();
  await mirror?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function put(repo: string, path: string, body: Buffer): Promise<void> {
  const res = await fetch(`${srv.url}/${repo}/${path}`, { method: 'PUT', body: new Uint8Array(body) });
  expect(res.status).toBe(201);
}

describe.skipIf(!HAVE_RPMBUILD || !HAVE_CREATEREPO)('rpm virtual repo', () => {
  it('merges members: the first member wins on name-epoch-version-release-arch, with its filelists and other entries', async () => {
    await put('vl', `mine/${LIB}`, rpms.get(LIB)!);
    const { xml } = await readRepodata(`${srv.url}/vv`);
    expect(locations(xml.primary)).toEqual([`vl/mine/${LIB}`, `vr/Packages/${TOOL}`]);
    for (const type of ['filelists', 'other'] as const) {
      expect([...packageBlocks(xml[type]).keys()].sort(), type).toEqual([...packageBlocks(xml.primary).keys()].sort());
      expect(xml[type], type).toContain('packages="2"');
    }
    // The entries themselves are the members' own (only the location gains the member's name).
    const local = await readRepodata(`${srv.url}/vl`);
    const [id] = packageBlocks(local.xml.filelists).keys();
    expect(packageBlocks(xml.filelists).get(id)).toEqual(packageBlocks(local.xml.filelists).get(id));
  });

  it('serves packages from the member whose entry it kept', async () => {
    const a = await fetch(`${srv.url}/vv/vl/mine/${LIB}`);
    expect(a.status).toBe(200);
    expect(a.headers.get('x-artifact-repo')).toBe('vl');
    expect(Buffer.from(await a.arrayBuffer()).equals(rpms.get(LIB)!)).toBe(true);
    const b = await fetch(`${srv.url}/vv/vr/Packages/${TOOL}`);
    expect(b.status).toBe(200);
    expect(b.headers.get('x-artifact-repo')).toBe('vr');
    expect((await fetch(`${srv.url}/vv/Packages/${TOOL}`)).status).toBe(404);
    expect((await fetch(`${srv.url}/vv/other/Packages/${TOOL}`)).status).toBe(404);
  });

  it.skipIf(!HAVE_DNF)('dnf installs a package and its dependency through the virtual repo (and a virtual repo over it)', async () => {
    for (const repo of ['vv', 'vouter']) {
      const d = tempDir();
      try {
        await dnf(d, `${srv.url}/${repo}/`, ['install', 'hello-tool']);
        const q = await dnf(d, `${srv.url}/${repo}/`, ['repoquery', '--installed', '--qf', '%{name}-%{version}']);
        expect(q, repo).toContain('hello-tool-2.0');
        expect(q, repo).toContain('hello-lib-1.2.0');
      } finally {
        rmSync(d, { recursive: true, force: true });
      }
    }
  });

  it('is derived again when a member changes; the previous generation stays readable', async () => {
    const old = await readRepodata(`${srv.url}/vv`);
    await put('vl', `extra/${TOOL}`, rpms.get(TOOL)!);
    const now = await readRepodata(`${srv.url}/vv`);
    expect(now.repomd).not.toBe(old.repomd);
    expect(locations(now.xml.primary)).toEqual([`vl/extra/${TOOL}`, `vl/mine/${LIB}`]);
    for (const href of old.hrefs) expect((await fetch(`${srv.url}/vv/${href}`)).status, href).toBe(200);
    const outer = await readRepodata(`${srv.url}/vouter`);
    expect(locations(outer.xml.primary)).toEqual([`vv/vl/extra/${TOOL}`, `vv/vl/mine/${LIB}`]);
    // Unchanged members: the same bytes again.
    expect((await readRepodata(`${srv.url}/vv`)).repomd).toBe(now.repomd);
  });

  it('serves a package uploaded to a member since its repodata was last read, by the member path', async () => {
    await srv.addRepo({ name: 'dl', format: 'rpm', kind: 'local' });
    await srv.addRepo({ name: 'dv', format: 'rpm', kind: 'virtual', members: ['dl'] });
    await put('dl', TOOL, rpms.get(TOOL)!);
    expect(locations((await readRepodata(`${srv.url}/dv`)).xml.primary)).toEqual([`dl/${TOOL}`]);
    await put('dl', LIB, rpms.get(LIB)!);
    const res = await fetch(`${srv.url}/dv/dl/${LIB}`);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(rpms.get(LIB)!)).toBe(true);
    expect((await fetch(`${srv.url}/dv/dl/nothere-1-1.noarch.rpm`)).status).toBe(404);
  });

  it('refuses writes unless it has a default_local member', async () => {
    const res = await fetch(`${srv.url}/vv/x/${LIB}`, { method: 'PUT', body: new Uint8Array(rpms.get(LIB)!) });
    expect(res.status).toBe(405);
  });
});

describe.skipIf(!HAVE_RPMBUILD || !HAVE_CREATEREPO)('rpm virtual repo: dependency confusion', () => {
  beforeAll(() => put('sl', LIB, rpms.get(LIB)!));

  it('a package name the local member publishes hides the remote\'s packages of that name, through a nested virtual, unless allow-listed', async () => {
    // The remote alone, and the inner virtual over it, offer its hello-lib.
    expect(locations((await readRepodata(`${srv.url}/sinner`)).xml.primary)).toEqual([`sr/Packages/${LIB_REMOTE}`, `sr/Packages/${TOOL}`]);
    const merged = await readRepodata(`${srv.url}/sv`);
    expect(locations(merged.xml.primary)).toEqual([`sinner/sr/Packages/${TOOL}`, `sl/${LIB}`]);
    expect(merged.xml.primary).not.toContain('9.9.9');
    for (const type of ['primary', 'filelists', 'other'] as const) expect(merged.xml[type], type).toContain('packages="2"');
    const open = await readRepodata(`${srv.url}/sopen`);
    expect(locations(open.xml.primary)).toEqual([`sinner/sr/Packages/${LIB_REMOTE}`, `sinner/sr/Packages/${TOOL}`, `sl/${LIB}`]);
  });

  it('does not serve a shadowed package by its member path either, unless allow-listed', async () => {
    const shadowed = `sinner/sr/Packages/${LIB_REMOTE}`;
    const refused = await fetch(`${srv.url}/sv/${shadowed}`);
    expect(refused.status).toBe(404);
    expect(await refused.json()).toEqual({ error: { code: 'NOT_FOUND', message: `${shadowed} not found in sv` } });
    for (const url of [`${srv.url}/sopen/${shadowed}`, `${srv.url}/sinner/sr/Packages/${LIB_REMOTE}`, `${srv.url}/sv/sinner/sr/Packages/${TOOL}`]) {
      const res = await fetch(url);
      expect(res.status, url).toBe(200);
      expect(res.headers.get('x-artifact-repo'), url).toBe('sr');
      await res.arrayBuffer();
    }
  });

  it.skipIf(!HAVE_DNF)('dnf sees only the local hello-lib through the virtual repo, and both where it is allow-listed', async () => {
    const query = async (repo: string) => {
      const d = tempDir();
      try {
        return (await dnf(d, `${srv.url}/${repo}/`, ['repoquery', '--qf', '%{name}-%{version}-%{release}', 'hello-lib'])).split('\n').filter((l) => l.startsWith('hello-lib')).sort();
      } finally {
        rmSync(d, { recursive: true, force: true });
      }
    };
    expect(await query('sv')).toEqual(['hello-lib-1.2.0-3']);
    expect(await query('sopen')).toEqual(['hello-lib-1.2.0-3', 'hello-lib-9.9.9-1']);
  });
});
