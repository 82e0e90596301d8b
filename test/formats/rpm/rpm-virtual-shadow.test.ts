import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { startUpstream, type FakeUpstream } from '../../helpers/upstream.js';
import { buildFixtureRpms, dnf, HAVE_CREATEREPO, HAVE_DNF, HAVE_RPMBUILD, readRepodata, tempDir } from './rpms.js';

const LIB = 'hello-lib-1.2.0-3.noarch.rpm';
const TOOL = 'hello-tool-2.0-1.noarch.rpm';
const LIB_REMOTE = 'hello-lib-9.9.9-1.noarch.rpm';

let srv: TestServer;
let upstream: FakeUpstream;
let dir: string;
let rpms: Map<string, Buffer>;

const locations = (primary: string) => [...primary.matchAll(/<location href="([^"]+)"/g)].map((m) => m[1]).sort();

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
  mkdirSync(join(updir, 'Packages'), { recursive: true });
  if (HAVE_RPMBUILD && HAVE_CREATEREPO) {
    rpms = buildFixtureRpms(dir);
    writeFileSync(join(updir, 'Packages', LIB_REMOTE), buildRemoteLib(dir));
    writeFileSync(join(updir, 'Packages', TOOL), rpms.get(TOOL)!);
    execFileSync('createrepo_c', ['-q', '--no-database', updir], { stdio: 'pipe' });
  }
  upstream = await startUpstream((req, res) => {
    try {
      const body = readFileSync(join(updir, decodeURIComponent((req.url ?? '/').split('?')[0])));
      res.writeHead(200, { 'content-length': body.length }).end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  srv = await startServer();
  await srv.addRepo({ name: 'sl', format: 'rpm', kind: 'local' });
  await srv.addRepo({ name: 'sr', format: 'rpm', kind: 'remote', upstream: `${upstream.url}/` });
  await srv.addRepo({ name: 'sinner', format: 'rpm', kind: 'virtual', members: ['sr'] });
  await srv.addRepo({ name: 'sv', format: 'rpm', kind: 'virtual', members: ['sl', 'sinner'] });
  await srv.addRepo({ name: 'sopen', format: 'rpm', kind: 'virtual', members: ['sl', 'sinner'], allow_shadowed: ['hello-lib'] });
  if (rpms) {
    const res = await fetch(`${srv.url}/sl/${LIB}`, { method: 'PUT', body: new Uint8Array(rpms.get(LIB)!) });
    expect(res.status).toBe(201);
  }
});
afterAll(async () => {
  await srv?.close();
  await upstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!HAVE_RPMBUILD || !HAVE_CREATEREPO)('rpm virtual repo: dependency confusion', () => {
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
