import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { which } from '../../helpers/which.js';
import { metadataOf, moduleTgz, publish, puppetInstall, sha256hex } from './modules.js';

let srv: TestServer;
let repoUrl: string;
const tgz: Record<string, Buffer> = {};

beforeAll(async () => {
  srv = await startServer();
  await srv.addRepo({ name: 'pl', format: 'puppet', kind: 'local' });
  repoUrl = `${srv.url}/pl`;
  tgz.base1 = await moduleTgz(metadataOf('acme-base', '1.0.0'));
  tgz.base11 = await moduleTgz(metadataOf('acme-base', '1.1.0'));
  tgz.base2 = await moduleTgz(metadataOf('acme-base', '2.0.0'));
  tgz.app = await moduleTgz(metadataOf('acme-app', '0.3.0', [{ name: 'acme/base', version_requirement: '>= 1.0.0 < 2.0.0' }]));
});
afterAll(async () => srv?.close());

async function rows(repo: string): Promise<string[]> {
  const out: string[] = [];
  for await (const f of srv.svc.meta.files.list(repo)) out.push(f.path);
  return out.sort();
}

describe('puppet local repo', () => {
  it('publishes a release from the multipart upload the Forge tools send, once per version', async () => {
    const res = await publish(repoUrl, tgz.base1);
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ uri: '/v3/releases/acme-base-1.0.0', slug: 'acme-base-1.0.0', file_sha256: sha256hex(tgz.base1) });
    const again = await publish(repoUrl, await moduleTgz(metadataOf('acme-base', '1.0.0'), { extra: { 'acme-base-1.0.0/README.md': 'changed\n' } }));
    expect(again.status).toBe(409);
    const body = await again.json();
    expect(body.error.code).toBe('CONFLICT');
    expect(body.message).toBe('v3/files/acme-base-1.0.0.tar.gz already exists in pl and cannot be overwritten');
    // The first upload is what is served.
    const file = await fetch(`${repoUrl}/v3/files/acme-base-1.0.0.tar.gz`);
    expect(file.status).toBe(200);
    expect(file.headers.get('content-type')).toBe('application/gzip');
    expect(file.headers.get('x-artifact-source')).toBe('local');
    expect(Buffer.from(await file.arrayBuffer()).equals(tgz.base1)).toBe(true);
    for (const t of [tgz.base11, tgz.base2, tgz.app]) expect((await publish(repoUrl, t)).status).toBe(201);
  });

  it('refuses bad tarballs with 400 and stores nothing', async () => {
    const before = await rows('pl');
    const cases: [Buffer, string][] = [
      [await moduleTgz({ ...metadataOf('acme-bad', '1.0.0'), name: 'acme_bad' }, { dir: 'x' }), 'module tarball: name "acme_bad" is not owner-name'],
      [await moduleTgz(metadataOf('acme-bad', '1.0'), { dir: 'x' }), 'module tarball: version "1.0" is not SemVer'],
      [await moduleTgz(metadataOf('acme-bad', '1.0.0', [{ name: 'nodash' }])), 'module tarball: dependency name "nodash" is not owner-name'],
      [await moduleTgz(metadataOf('acme-bad', '1.0.0', [{ name: 'acme-base', version_requirement: 'not a range' }])),
        'module tarball: dependency acme-base has an invalid version_requirement "not a range"'],
      [await moduleTgz('{ not json', { dir: 'x' }), 'module tarball: metadata.json is not valid JSON'],
      [await moduleTgz(metadataOf('acme-bad', '1.0.0'), { extra: { '../../etc/evil': 'x' } }), 'module tarball has an entry outside its directory: "../../etc/evil"'],
      [Buffer.from('not a tarball at all'), 'module tarball is not a valid .tar.gz: incorrect header check'],
    ];
    for (const [body, message] of cases) {
      const res = await publish(repoUrl, body);
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ message, errors: [message], error: { code: 'BAD_REQUEST', message } });
    }
    const none = await fetch(`${repoUrl}/v3/releases`, { method: 'POST', body: new FormData() });
    expect(none.status).toBe(400);
    expect(await rows('pl')).toEqual(before);
  });

  it('lists releases newest first with metadata and checksums; pagination.next is a path under the repo', async () => {
    const res = await fetch(`${repoUrl}/v3/releases?module=acme-base&limit=2&sort_by=version`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const page = await res.json();
    expect(page.pagination).toEqual({
      limit: 2, offset: 0, total: 3, previous: null,
      first: '/v3/releases?module=acme-base&limit=2&sort_by=version&offset=0',
      current: '/v3/releases?module=acme-base&limit=2&sort_by=version&offset=0',
      next: '/v3/releases?module=acme-base&limit=2&sort_by=version&offset=2',
    });
    expect(page.results.map((r: { version: string }) => r.version)).toEqual(['2.0.0', '1.1.0']);
    const r = page.results[0];
    expect(r.slug).toBe('acme-base-2.0.0');
    expect(r.file_uri).toBe('/v3/files/acme-base-2.0.0.tar.gz');
    expect(r.file_sha256).toBe(sha256hex(tgz.base2));
    expect(r.file_size).toBe(tgz.base2.length);
    expect(r.metadata).toEqual(metadataOf('acme-base', '2.0.0'));
    const next = await (await fetch(`${repoUrl}${page.pagination.next}`)).json();
    expect(next.results.map((x: { version: string }) => x.version)).toEqual(['1.0.0']);
    expect(next.pagination.next).toBeNull();
    // An unknown module is an empty list (as on the Forge); a malformed one is 400.
    const unknown = await (await fetch(`${repoUrl}/v3/releases?module=acme-nothing`)).json();
    expect(unknown.results).toEqual([]);
    expect(unknown.pagination.total).toBe(0);
    expect((await fetch(`${repoUrl}/v3/releases?module=..%2Fetc`)).status).toBe(400);
    expect((await fetch(`${repoUrl}/v3/releases`)).status).toBe(400);
  });

  it('serves the module document and single releases; unknown ones are 404', async () => {
    const mod = await (await fetch(`${repoUrl}/v3/modules/acme-app`)).json();
    expect(mod.slug).toBe('acme-app');
    expect(mod.owner.username).toBe('acme');
    expect(mod.current_release.version).toBe('0.3.0');
    expect(mod.current_release.metadata.dependencies).toEqual([{ name: 'acme/base', version_requirement: '>= 1.0.0 < 2.0.0' }]);
    expect(mod.releases).toEqual([{
      uri: '/v3/releases/acme-app-0.3.0', slug: 'acme-app-0.3.0', version: '0.3.0', supported: false, created_at: mod.releases[0].created_at,
      deleted_at: null, file_uri: '/v3/files/acme-app-0.3.0.tar.gz', file_size: tgz.app.length,
    }]);
    const rel = await fetch(`${repoUrl}/v3/releases/acme-base-1.1.0`);
    expect(rel.status).toBe(200);
    expect((await rel.json()).file_sha256).toBe(sha256hex(tgz.base11));
    const missing = await fetch(`${repoUrl}/v3/modules/acme-nothing`);
    expect(missing.status).toBe(404);
    expect((await missing.json()).message).toBe('v3/modules/acme-nothing/releases.json not found in pl');
    expect((await fetch(`${repoUrl}/v3/releases/acme-base-9.9.9`)).status).toBe(404);
    expect((await fetch(`${repoUrl}/v3/files/acme-base-9.9.9.tar.gz`)).status).toBe(404);
    expect((await fetch(`${repoUrl}/v3/files/..%2F..%2Fetc%2Fpasswd`)).status).toBe(400);
  });

  it.skipIf(!which('puppet'))('puppet module install resolves the dependency chain from this repo', async () => {
    const r = await puppetInstall(repoUrl, 'acme-app');
    expect(r.code, r.out).toBe(0);
    expect(Object.fromEntries(Object.entries(r.installed).map(([d, m]) => [d, m.version]))).toEqual({ app: '0.3.0', base: '1.1.0' });
    // A version that does not exist: puppet reports it, installs nothing.
    const none = await puppetInstall(repoUrl, 'acme-app', ['--version', '9.0.0']);
    expect(none.code).not.toBe(0);
    expect(none.installed).toEqual({});
  });

  it('deletes a release; the version can then be published again', async () => {
    const del = await fetch(`${repoUrl}/v3/releases/acme-base-2.0.0`, { method: 'DELETE' });
    expect(del.status).toBe(204);
    expect((await fetch(`${repoUrl}/v3/releases/acme-base-2.0.0`)).status).toBe(404);
    expect((await fetch(`${repoUrl}/v3/files/acme-base-2.0.0.tar.gz`)).status).toBe(404);
    const list = await (await fetch(`${repoUrl}/v3/releases?module=acme-base`)).json();
    expect(list.results.map((x: { version: string }) => x.version)).toEqual(['1.1.0', '1.0.0']);
    const gone = await fetch(`${repoUrl}/v3/releases/acme-base-2.0.0`, { method: 'DELETE' });
    expect(gone.status).toBe(404);
    expect((await publish(repoUrl, tgz.base2)).status).toBe(201);
  });
});
