import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { startUpstream, type FakeUpstream } from '../../helpers/upstream.js';
import { buildFixtureRpms, dnf, HAVE_CREATEREPO, HAVE_DNF, HAVE_RPMBUILD, tempDir } from './rpms.js';

const LIB = 'hello-lib-1.2.0-3.noarch.rpm';
const TOOL = 'hello-tool-2.0-1.noarch.rpm';

let srv: TestServer;
let upstream: FakeUpstream;
let dir: string;
let updir: string;
let rpms: Map<string, Buffer>;
/** Bodies the upstream serves instead of its files (tampering). */
const overrides = new Map<string, Buffer>();

function createrepo(): void {
  rmSync(join(updir, 'repodata'), { recursive: true, force: true });
  execFileSync('createrepo_c', ['-q', '--no-database', updir], { stdio: 'pipe' });
}

const hrefsOf = (repomd: string) => [...repomd.matchAll(/<location href="([^"]+)"/g)].map((m) => m[1]);

beforeAll(async () => {
  dir = tempDir();
  updir = join(dir, 'upstream');
  mkdirSync(join(updir, 'Packages'), { recursive: true });
  if (HAVE_RPMBUILD) {
    rpms = buildFixtureRpms(dir);
    for (const f of [LIB, TOOL]) writeFileSync(join(updir, 'Packages', f), rpms.get(f)!);
    if (HAVE_CREATEREPO) createrepo();
  }
  // A static mirror of the directory, as it is on disk at each request.
  upstream = await startUpstream((req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]).replace(/^\/os\//, '');
    const body = overrides.get(path) ?? (() => {
      try {
        return readFileSync(join(updir, path));
      } catch {
        return undefined;
      }
    })();
    if (!body) return void res.writeHead(404).end('not found');
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  srv = await startServer({ 'remote.metadata_ttl': '1s', 'remote.upstream_timeout': '2s' });
  await srv.addRepo({ name: 'rr', format: 'rpm', kind: 'remote', upstream: `${upstream.url}/os/` });
});
afterAll(async () => {
  await srv?.close();
  await upstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!HAVE_RPMBUILD || !HAVE_CREATEREPO)('rpm remote repo', () => {
  it('serves the upstream repomd.xml, with every file it names already cached and verified', async () => {
    const res = await fetch(`${srv.url}/rr/repodata/repomd.xml`);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-artifact-source')).toBe('remote');
    const body = await res.text();
    expect(body).toBe(readFileSync(join(updir, 'repodata/repomd.xml'), 'utf8'));
    const hrefs = hrefsOf(body);
    expect(hrefs.length).toBe(3);
    for (const href of hrefs) {
      expect(await srv.svc.meta.files.get('rr', href), href).not.toBeNull();
      const got = await fetch(`${srv.url}/rr/${href}`);
      expect(got.status).toBe(200);
      expect(got.headers.get('x-artifact-source')).toBe('cache');
      expect(Buffer.from(await got.arrayBuffer()).equals(readFileSync(join(updir, href)))).toBe(true);
      expect(upstream.hits.get(`GET /os/${href}`)).toBe(1);
    }
  });

  it('a package whose bytes differ from the checksum in primary.xml is 502 and not cached', async () => {
    overrides.set(`Packages/${TOOL}`, rpms.get(LIB)!);
    try {
      expect((await fetch(`${srv.url}/rr/Packages/${TOOL}`)).status).toBe(502);
      expect(await srv.svc.meta.files.get('rr', `Packages/${TOOL}`)).toBeNull();
    } finally {
      overrides.clear();
    }
  });

  it.skipIf(!HAVE_DNF)('dnf installs a package and its dependency through the remote repo', async () => {
    const d = tempDir();
    try {
      await dnf(d, `${srv.url}/rr/`, ['install', 'hello-tool']);
      const q = await dnf(d, `${srv.url}/rr/`, ['repoquery', '--installed', '--qf', '%{name}-%{version}']);
      expect(q).toContain('hello-tool-2.0');
      expect(q).toContain('hello-lib-1.2.0');
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
    expect(await srv.svc.meta.files.get('rr', `Packages/${TOOL}`)).not.toBeNull();
  });

  it('a new upstream repomd switches after the TTL; clients on the old generation still get its files', async () => {
    const old = await (await fetch(`${srv.url}/rr/repodata/repomd.xml`)).text();
    // The upstream regenerates with one more package; its old repodata files are gone.
    cpSync(join(updir, 'Packages', LIB), join(updir, 'Packages', 'hello-lib-copy.noarch.rpm'));
    createrepo();
    await new Promise((r) => setTimeout(r, 1100));
    const fresh = await (await fetch(`${srv.url}/rr/repodata/repomd.xml`)).text();
    expect(fresh).not.toBe(old);
    expect(fresh).toBe(readFileSync(join(updir, 'repodata/repomd.xml'), 'utf8'));
    for (const href of hrefsOf(old)) expect((await fetch(`${srv.url}/rr/${href}`)).status, href).toBe(200);
    for (const href of hrefsOf(fresh)) expect((await fetch(`${srv.url}/rr/${href}`)).status, href).toBe(200);
  });

  it('repomd.xml.asc is passed through from the upstream, with the TTL rules', async () => {
    writeFileSync(join(updir, 'repodata/repomd.xml.asc'), '-----BEGIN PGP SIGNATURE-----\nfake\n-----END PGP SIGNATURE-----\n');
    const res = await fetch(`${srv.url}/rr/repodata/repomd.xml.asc`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('BEGIN PGP SIGNATURE');
    expect((await srv.svc.meta.files.get('rr', 'repodata/repomd.xml.asc'))?.source).toBe('remote');
  });

  it('a repodata file that does not match the checksum in its name is refused and not cached', async () => {
    const name = `repodata/${'0'.repeat(64)}-primary.xml.gz`;
    overrides.set(name, Buffer.from('not it'));
    try {
      const res = await fetch(`${srv.url}/rr/${name}`);
      const ok = res.status === 200 ? await res.arrayBuffer().then(() => true, () => false) : false;
      expect(ok).toBe(false);
      expect(await srv.svc.meta.files.get('rr', name)).toBeNull();
    } finally {
      overrides.clear();
    }
  });
});
