import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { buildDist, pipInstall, PYTHON, pyEval, twineUpload, uploadForm, which, type Dist } from './clients.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const JSON_ACCEPT = 'application/vnd.pypi.simple.v1+json';

describe.skipIf(!PYTHON || !which('twine'))('pypi local repository (twine, pip)', () => {
  let srv: TestServer;
  let dep: { wheel: Dist; sdist?: Dist };
  let app: { wheel: Dist };

  beforeAll(async () => {
    [dep, app] = await Promise.all([buildDist('demo-dep', { sdist: true }), buildDist('demo-app')]);
    srv = await startServer();
    await srv.addRepo({ name: 'py', format: 'pypi', kind: 'local' });
  }, 120_000);
  afterAll(async () => srv?.close());

  it('twine uploads a wheel and an sdist; pip installs a package with its dependency', async () => {
    const up = await twineUpload(`${srv.url}/py/`, [dep.wheel.path, dep.sdist!.path, app.wheel.path]);
    expect(up.code, up.stdout + up.stderr).toBe(0);

    const pip = await pipInstall(`${srv.url}/py/simple/`, ['demo-app']);
    expect(pip.code, pip.stdout + pip.stderr).toBe(0);
    expect(pip.stdout).toMatch(/Successfully installed .*demo-app-1\.0\.0/i);
    expect(pip.stdout).toMatch(/Successfully installed .*demo-dep-1\.0/i);
    expect(await pyEval(pip.target, 'import demo_app; print(demo_app.APP)')).toBe('demo-app sees demo-dep 1.0');
  }, 120_000);

  it('serves the PEP 503 page with sha256 fragments, requires-python and PEP 658 metadata', async () => {
    const res = await fetch(`${srv.url}/py/simple/demo-dep/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('vary')).toBe('Accept, Accept-Encoding');
    expect(res.headers.get('x-artifact-source')).toBe('local');
    const html = await res.text();
    const base = `${srv.url}/py/packages/demo-dep/`;
    expect(html).toContain(`href="${base}${dep.wheel.filename}#sha256=${dep.wheel.sha256}"`);
    expect(html).toContain(`href="${base}${dep.sdist!.filename}#sha256=${dep.sdist!.sha256}"`);
    expect(html).toContain('data-requires-python="&gt;=3.7"');
    const m = /data-dist-info-metadata="sha256=([a-f0-9]{64})" data-core-metadata="sha256=\1"/.exec(html);
    expect(m).toBeTruthy();
    // The sdist has no .metadata: only the wheel's anchor advertises it.
    expect(html.match(/data-core-metadata/g)).toHaveLength(1);

    const meta = await fetch(`${base}${dep.wheel.filename}.metadata`);
    expect(meta.status).toBe(200);
    const metaBody = Buffer.from(await meta.arrayBuffer());
    expect(sha(metaBody)).toBe(m![1]);
    expect(metaBody.toString()).toMatch(/^Metadata-Version: .*\nName: demo-dep\nVersion: 1\.0\n/s);
    expect((await fetch(`${base}${dep.sdist!.filename}.metadata`)).status).toBe(404);

    const file = await fetch(`${base}${dep.wheel.filename}`);
    expect(file.status).toBe(200);
    expect(sha(Buffer.from(await file.arrayBuffer()))).toBe(dep.wheel.sha256);
    expect(file.headers.get('x-artifact-repo')).toBe('py');
  });

  it('serves PEP 691 JSON when asked for it', async () => {
    const res = await fetch(`${srv.url}/py/simple/demo-dep/`, { headers: { accept: `${JSON_ACCEPT}, text/html;q=0.1` } });
    expect(res.headers.get('content-type')).toBe(JSON_ACCEPT);
    const j = await res.json();
    expect(j.meta['api-version']).toBe('1.0');
    expect(j.name).toBe('demo-dep');
    const whl = j.files.find((f: { filename: string }) => f.filename === dep.wheel.filename);
    expect(whl).toMatchObject({
      url: `${srv.url}/py/packages/demo-dep/${dep.wheel.filename}`,
      hashes: { sha256: dep.wheel.sha256 },
      'requires-python': '>=3.7',
      yanked: false,
      size: dep.wheel.bytes.length,
    });
    expect(whl['core-metadata'].sha256).toMatch(/^[a-f0-9]{64}$/);
    expect(whl['dist-info-metadata']).toBeUndefined(); // PEP 714
    const sd = j.files.find((f: { filename: string }) => f.filename === dep.sdist!.filename);
    expect(sd['core-metadata']).toBeUndefined();
    // Browsers (text/html first) and clients without Accept get HTML.
    expect((await fetch(`${srv.url}/py/simple/demo-dep/`, { headers: { accept: 'text/html,*/*;q=0.8' } })).headers.get('content-type')).toMatch(/^text\/html/);
    expect((await fetch(`${srv.url}/py/simple/demo-dep/?format=${encodeURIComponent(JSON_ACCEPT)}`)).headers.get('content-type')).toBe(JSON_ACCEPT);
  });

  it('normalises project names per PEP 503 by redirecting', async () => {
    const r = await fetch(`${srv.url}/py/simple/Demo_App/`, { redirect: 'manual' });
    expect(r.status).toBe(301);
    expect(r.headers.get('location')).toBe(`${srv.url}/py/simple/demo-app/`);
    const noSlash = await fetch(`${srv.url}/py/simple/demo-app`, { redirect: 'manual' });
    expect(noSlash.status).toBe(301);
    expect(noSlash.headers.get('location')).toBe(`${srv.url}/py/simple/demo-app/`);
    const followed = await fetch(`${srv.url}/py/simple/DEMO.app/`);
    expect(followed.status).toBe(200);
    expect(await followed.text()).toContain(app.wheel.filename);
    expect((await fetch(`${srv.url}/py/simple/nothing-here/`)).status).toBe(404);
  });

  it('lists projects at /simple/ in HTML and JSON, and answers conditional GETs', async () => {
    const html = await fetch(`${srv.url}/py/simple/`);
    const body = await html.text();
    expect(body).toContain(`<a href="${srv.url}/py/simple/demo-dep/">demo-dep</a>`);
    expect(body).toMatch(new RegExp(`<a href="${srv.url}/py/simple/demo-app/">Demo[-_]App</a>`));
    const j = await (await fetch(`${srv.url}/py/simple/`, { headers: { accept: JSON_ACCEPT } })).json();
    expect(j.projects.map((p: { name: string }) => p.name).sort()).toEqual([expect.stringMatching(/^Demo[-_]App$/), 'demo-dep']);
    const again = await fetch(`${srv.url}/py/simple/`, { headers: { 'if-none-match': html.headers.get('etag')! } });
    expect(again.status).toBe(304);
  });

  it('refuses the same filename twice with 400, as PyPI does', async () => {
    const again = await twineUpload(`${srv.url}/py/`, [dep.wheel.path]);
    expect(again.code).not.toBe(0);
    expect(again.stdout + again.stderr).toMatch(/400/);
    expect(again.stdout + again.stderr).toMatch(/File already exists/);
    const skip = await twineUpload(`${srv.url}/py/`, ['--skip-existing', dep.wheel.path]);
    expect(skip.code, skip.stdout + skip.stderr).toBe(0);
  }, 60_000);

  it('refuses a wrong sha256 and a name or version that does not match the file, keeping nothing', async () => {
    const other = await buildDist('demo-dep', { version: '3.0' });
    const fields = { ':action': 'file_upload', protocol_version: '1', name: 'demo-dep', version: '3.0', filetype: 'bdist_wheel', pyversion: 'py3', metadata_version: '2.1' };
    const post = (extra: Record<string, string>) => {
      const f = uploadForm(other.wheel, { ...fields, ...extra });
      return fetch(`${srv.url}/py/`, { method: 'POST', body: new Uint8Array(f.body), headers: { 'content-type': f.contentType } });
    };
    const wrong = await post({ sha256_digest: sha('something else') });
    expect(wrong.status).toBe(400);
    expect((await wrong.json()).error.code).toBe('DIGEST_INVALID');
    const badName = await post({ name: 'other-name', sha256_digest: other.wheel.sha256 });
    expect(badName.status).toBe(400);
    const badVersion = await post({ version: '3.1', sha256_digest: other.wheel.sha256 });
    expect(badVersion.status).toBe(400);
    expect((await fetch(`${srv.url}/py/packages/demo-dep/${other.wheel.filename}`)).status).toBe(404);
    expect(await (await fetch(`${srv.url}/py/simple/demo-dep/`)).text()).not.toContain('3.0');

    // The same form with the right digest goes in; version "3.0.0" in the form matches "3.0" in the filename (PEP 440).
    const ok = await post({ version: '3.0.0', sha256_digest: other.wheel.sha256 });
    expect(ok.status).toBe(200);
    expect(await (await fetch(`${srv.url}/py/simple/demo-dep/`)).text()).toContain(other.wheel.filename);
  }, 60_000);

  it('streams a large upload into the store and serves it back byte for byte', async () => {
    const { randomBytes } = await import('node:crypto');
    const big = { filename: 'demo_dep-9.0.tar.gz', bytes: randomBytes(48 * 1024 * 1024) };
    const f = uploadForm(big, { ':action': 'file_upload', protocol_version: '1', name: 'demo-dep', version: '9.0', filetype: 'sdist', sha256_digest: sha(big.bytes) });
    const r = await fetch(`${srv.url}/py/`, { method: 'POST', body: new Uint8Array(f.body), headers: { 'content-type': f.contentType } });
    expect(r.status, await r.clone().text()).toBe(200);
    const got = await fetch(`${srv.url}/py/packages/demo-dep/${big.filename}`);
    expect(got.headers.get('content-length')).toBe(String(big.bytes.length));
    expect(sha(Buffer.from(await got.arrayBuffer()))).toBe(sha(big.bytes));
  }, 60_000);

  it('refuses uploads to a remote repo (405) and bodies that are not multipart (400)', async () => {
    const notForm = await fetch(`${srv.url}/py/`, { method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } });
    expect(notForm.status).toBe(400);
    await srv.addRepo({ name: 'py-remote', format: 'pypi', kind: 'remote', upstream: 'http://127.0.0.1:9/' });
    const f = uploadForm(dep.wheel, { ':action': 'file_upload', name: 'demo-dep', version: '1.0' });
    const r = await fetch(`${srv.url}/py-remote/`, { method: 'POST', body: new Uint8Array(f.body), headers: { 'content-type': f.contentType } });
    expect(r.status).toBe(405);
  });
});
