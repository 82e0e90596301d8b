import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/lib/digest.js';
import { runVerify } from '../../src/maintenance/verify.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { startUpstream, type FakeUpstream } from '../helpers/upstream.js';
import { uploadForm } from '../formats/pypi/clients.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The public registry of the story: it offers `corp-lib` 99.0.0 (npm) and `internal_pkg` 9.9 (pypi), the names a company uses privately. */
function publicRegistry(): (req: IncomingMessage, res: ServerResponse) => void {
  const tgz = Buffer.from('public tarball of corp-lib 99');
  const sdist = Buffer.from('public sdist of internal_pkg 9.9');
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const base = `http://${req.headers.host}`;
    if (path === '/corp-lib') {
      const dist = { tarball: `${base}/t/corp-lib-99.0.0.tgz`, integrity: `sha512-${createHash('sha512').update(tgz).digest('base64')}` };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
        name: 'corp-lib', 'dist-tags': { latest: '99.0.0' }, versions: { '99.0.0': { name: 'corp-lib', version: '99.0.0', dist } },
      }));
    } else if (path === '/t/corp-lib-99.0.0.tgz') res.writeHead(200).end(tgz);
    else if (path === '/simple/') res.writeHead(200, { 'content-type': 'text/html' }).end('<a href="/simple/internal-pkg/">Internal.Pkg</a>');
    else if (path === '/simple/internal-pkg/') {
      res.writeHead(200, { 'content-type': 'text/html' })
        .end(`<a href="${base}/f/internal_pkg-9.9.tar.gz#sha256=${sha256(sdist)}">internal_pkg-9.9.tar.gz</a>`);
    } else if (path === '/f/internal_pkg-9.9.tar.gz') res.writeHead(200).end(sdist);
    else res.writeHead(404).end('not found');
  };
}

/** An npm package tarball (package/package.json + index.js holding `text`), as npm pack makes it. */
async function npmTarball(name: string, version: string, text: Buffer): Promise<Buffer> {
  const pack = tar.pack();
  pack.entry({ name: 'package/package.json' }, JSON.stringify({ name, version }));
  pack.entry({ name: 'package/index.js' }, text);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

async function npmPublish(srv: TestServer, repo: string, name: string, version: string, text: Buffer): Promise<void> {
  const data = await npmTarball(name, version, text);
  const file = `${name}-${version}.tgz`;
  const body = {
    name, 'dist-tags': { latest: version },
    versions: { [version]: { name, version, dist: { integrity: `sha512-${createHash('sha512').update(data).digest('base64')}` } } },
    _attachments: { [file]: { data: data.toString('base64'), length: data.length } },
  };
  const r = await fetch(`${srv.url}/${repo}/${name}`, { method: 'PUT', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  expect(r.status, await r.text()).toBeLessThan(300);
}

async function pypiUpload(srv: TestServer, repo: string, filename: string, bytes: Buffer, name: string, version: string): Promise<void> {
  const form = uploadForm({ filename, bytes }, { ':action': 'file_upload', protocol_version: '1', name, version, filetype: 'sdist', sha256_digest: sha256(bytes) });
  const r = await fetch(`${srv.url}/${repo}/`, { method: 'POST', body: new Uint8Array(form.body), headers: { 'content-type': form.contentType } });
  expect(r.status, await r.text()).toBe(200);
}

describe('dependency confusion through virtual repos (nested, and with an unreadable local member)', () => {
  let srv: TestServer;
  let up: FakeUpstream;
  const privateSdist = Buffer.from('private sdist of internal_pkg 1.0');

  beforeAll(async () => {
    up = await startUpstream(publicRegistry());
    srv = await startServer();
    for (const f of ['npm', 'pypi'] as const) {
      const p = f === 'npm' ? 'npm' : 'py';
      await srv.addRepo({ name: `${p}-local`, format: f, kind: 'local' });
      await srv.addRepo({ name: `${p}-broken`, format: f, kind: 'local' });
      await srv.addRepo({ name: `${p}-remote`, format: f, kind: 'remote', upstream: up.url });
      await srv.addRepo({ name: `${p}-inner`, format: f, kind: 'virtual', members: [`${p}-remote`] });
      await srv.addRepo({ name: `${p}-nested`, format: f, kind: 'virtual', members: [`${p}-local`, `${p}-inner`] });
      await srv.addRepo({ name: `${p}-flat-broken`, format: f, kind: 'virtual', members: [`${p}-broken`, `${p}-remote`] });
      await srv.addRepo({ name: `${p}-nested-broken`, format: f, kind: 'virtual', members: [`${p}-remote`, `${p}-flat-broken`] });
    }
    // The remote side first, nested: member order must not matter to the rule.
    await srv.addRepo({ name: 'py-remote-first', format: 'pypi', kind: 'virtual', members: ['py-inner', 'py-local'] });
    await srv.addRepo({ name: 'g-local', format: 'generic', kind: 'local' });
    await srv.addRepo({ name: 'g-remote', format: 'generic', kind: 'remote', upstream: `${up.url}/g/` });
    await srv.addRepo({ name: 'g-virtual', format: 'generic', kind: 'virtual', members: ['g-local', 'g-remote'] });
    expect((await fetch(`${srv.url}/g-local/tool.bin`, { method: 'PUT', body: 'private tool.bin' })).status).toBeLessThan(300);
    await npmPublish(srv, 'npm-local', 'corp-lib', '1.0.0', Buffer.from('private corp-lib 1'));
    await npmPublish(srv, 'npm-broken', 'corp-lib', '1.0.0', Buffer.from('private corp-lib 1 (broken repo)'));
    await pypiUpload(srv, 'py-local', 'internal_pkg-1.0.tar.gz', privateSdist, 'internal_pkg', '1.0');
    await pypiUpload(srv, 'py-broken', 'internal_pkg-1.0.tar.gz', Buffer.from('private sdist, broken repo'), 'internal_pkg', '1.0');
  });
  afterAll(async () => {
    await srv?.close();
    await up?.close();
  });

  /** Loses a local row's blob from the blob store (fs or S3), as a disk fault or `verify` quarantine would. */
  async function loseBlob(repo: string, path: string): Promise<void> {
    const rec = await srv.svc.meta.files.get(repo, path);
    expect(rec).not.toBeNull();
    await srv.svc.blob.delete(rec!.digest as Digest);
    expect(await srv.svc.blob.stat(rec!.digest as Digest)).toBeNull();
  }

  it('npm: a nested virtual never offers the remote versions of a name a local repo in it holds', async () => {
    const doc = await (await fetch(`${srv.url}/npm-nested/corp-lib`)).json();
    expect(Object.keys(doc.versions)).toEqual(['1.0.0']);
    expect(doc['dist-tags'].latest).toBe('1.0.0');
    const hidden = await fetch(`${srv.url}/npm-nested/corp-lib/-/corp-lib-99.0.0.tgz`);
    expect(hidden.status).toBe(404);
    expect(await hidden.json()).toEqual({ error: expect.any(String) });
    const own = await fetch(`${srv.url}/npm-nested/corp-lib/-/corp-lib-1.0.0.tgz`);
    expect(own.headers.get('x-artifact-repo')).toBe('npm-local');
    // The inner virtual alone still proxies the public name.
    expect(Object.keys((await (await fetch(`${srv.url}/npm-inner/corp-lib`)).json()).versions)).toEqual(['99.0.0']);
    expect(up.count('/t/corp-lib')).toBe(0);
  });

  it('pypi: a nested virtual never lists or serves the remote files of a project a local repo in it holds', async () => {
    const page = await (await fetch(`${srv.url}/py-nested/simple/internal-pkg/`)).text();
    expect(page).toContain(`internal_pkg-1.0.tar.gz#sha256=${sha256(privateSdist)}`);
    expect(page).not.toContain('internal_pkg-9.9');
    const hidden = await fetch(`${srv.url}/py-nested/packages/internal-pkg/internal_pkg-9.9.tar.gz`);
    expect(hidden.status).toBe(404);
    expect(await hidden.json()).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
    const root = await (await fetch(`${srv.url}/py-nested/simple/`)).text();
    expect(root.match(/internal[-_]pkg\/"/g)).toHaveLength(1);
    expect(root).toContain(`${srv.url}/py-nested/simple/internal-pkg/`);
    expect(up.count('/f/')).toBe(0);
  });

  it('pypi: with the nested remote listed first, /simple/<p>/ and /simple/ still take the name from the local repo only', async () => {
    const json = { accept: 'application/vnd.pypi.simple.v1+json' };
    const page = await (await fetch(`${srv.url}/py-remote-first/simple/internal-pkg/`, { headers: json })).json();
    expect(page.files.map((f: { filename: string }) => f.filename)).toEqual(['internal_pkg-1.0.tar.gz']);
    expect(page.files[0].hashes).toEqual({ sha256: sha256(privateSdist) });
    const hidden = await fetch(`${srv.url}/py-remote-first/packages/internal-pkg/internal_pkg-9.9.tar.gz`);
    expect(hidden.status).toBe(404);
    expect(await hidden.json()).toEqual({ error: { code: 'NOT_FOUND', message: expect.any(String) } });
    const own = await fetch(`${srv.url}/py-remote-first/packages/internal-pkg/internal_pkg-1.0.tar.gz`);
    expect(own.status).toBe(200);
    expect(own.headers.get('x-artifact-repo')).toBe('py-local');
    expect(Buffer.from(await own.arrayBuffer())).toEqual(privateSdist);
    const root = await fetch(`${srv.url}/py-remote-first/simple/`, { headers: json });
    expect(root.status).toBe(200);
    // The upstream spells it Internal.Pkg: the entry-level rule dropped that entry before the merge.
    expect((await root.json()).projects).toEqual([{ name: 'internal_pkg' }]);
    expect(root.headers.get('x-artifact-parts')).toMatch(/^py-remote=(remote|cache), py-local=local$/);
    expect(up.count('/f/')).toBe(0);
  });

  it('npm: a local member whose packument blob is lost fails the merge closed, flat or nested', async () => {
    await loseBlob('npm-broken', 'corp-lib/-/_packument.json');
    for (const repo of ['npm-flat-broken', 'npm-nested-broken']) {
      for (const accept of ['application/json', 'application/vnd.npm.install-v1+json']) {
        const r = await fetch(`${srv.url}/${repo}/corp-lib`, { headers: { accept } });
        const body = await r.text();
        expect(r.status, `${repo} ${body}`).toBe(500);
        expect(JSON.parse(body)).toEqual({ error: expect.any(String) });
        expect(body).not.toContain('99.0.0');
      }
      const t = await fetch(`${srv.url}/${repo}/corp-lib/-/corp-lib-99.0.0.tgz`);
      expect(t.status).toBe(500);
    }
    expect(up.count('/t/corp-lib')).toBe(0);
    // Names the broken repo does not hold still merge: only that name fails.
    expect((await fetch(`${srv.url}/npm-flat-broken/other-name`)).status).toBe(404);
  });

  it('pypi: a local member whose file blob is lost never lets the remote files of that project through', async () => {
    await loseBlob('py-broken', 'packages/internal-pkg/internal_pkg-1.0.tar.gz');
    for (const repo of ['py-flat-broken', 'py-nested-broken']) {
      const page = await fetch(`${srv.url}/${repo}/simple/internal-pkg/`);
      expect(await page.text()).not.toContain('internal_pkg-9.9');
      const own = await fetch(`${srv.url}/${repo}/packages/internal-pkg/internal_pkg-1.0.tar.gz`);
      expect(own.status).toBe(500);
      expect(await own.json()).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
      expect((await fetch(`${srv.url}/${repo}/packages/internal-pkg/internal_pkg-9.9.tar.gz`)).status).toBe(404);
    }
    expect(up.count('/f/')).toBe(0);
  });

  it('generic: a local member whose file blob is lost answers 5xx, never the remote file of that path', async () => {
    await loseBlob('g-local', 'tool.bin');
    const r = await fetch(`${srv.url}/g-virtual/tool.bin`);
    expect(r.status).toBe(500);
    expect(await r.json()).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
    expect(up.count('/g/')).toBe(0);
  });

  // Last: verify --repair works on the whole store.
  it('npm: after verify --repair dropped the lost packument row, the name is still held (tarballs remain): still 5xx', async () => {
    await srv.addRepo({ name: 'npm-repaired', format: 'npm', kind: 'local' });
    await srv.addRepo({ name: 'npm-flat-repaired', format: 'npm', kind: 'virtual', members: ['npm-repaired', 'npm-remote'] });
    await npmPublish(srv, 'npm-repaired', 'corp-lib', '1.0.0', Buffer.from('private corp-lib 1 (repaired repo)'));
    await loseBlob('npm-repaired', 'corp-lib/-/_packument.json');
    await runVerify(srv.svc, { repair: true });
    expect(await srv.svc.meta.files.get('npm-repaired', 'corp-lib/-/_packument.json')).toBeNull();
    const r = await fetch(`${srv.url}/npm-flat-repaired/corp-lib`);
    const body = await r.text();
    expect(r.status, body).toBe(500);
    expect(body).not.toContain('99.0.0');
  });
});
