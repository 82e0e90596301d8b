import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { startUpstream } from '../../helpers/upstream.js';
import { buildDist, pipInstall, PYTHON, PYTHON_PEP714, pyEval, wheelMetadata, type Dist } from './clients.js';
import { upstreamIndex, type UpstreamFile } from './upstream-index.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const JSON_ACCEPT = 'application/vnd.pypi.simple.v1+json';

/** An index server and a separate files server (absolute URLs on another host), like pypi.org + files.pythonhosted.org. */
async function pypiUpstream(files: UpstreamFile[], o: { json?: boolean } = {}) {
  let filesUrl = '';
  const h = upstreamIndex(() => files, () => filesUrl, o);
  const filesSrv = await startUpstream(h.filesHandler);
  filesUrl = filesSrv.url;
  const index = await startUpstream(h.index);
  return { index, files: filesSrv, list: files, close: async () => { await index.close(); await filesSrv.close(); } };
}

describe.skipIf(!PYTHON)('pypi remote repository (pip through a proxied index)', () => {
  let srv: TestServer;
  let dep1: Dist;
  let dep2: Dist;
  let depSdist: Dist;
  let app: Dist;
  let files: UpstreamFile[];
  const ups: { close(): Promise<void> }[] = [];

  beforeAll(async () => {
    const [d1, d2, a] = await Promise.all([
      buildDist('demo-dep', { sdist: true }), buildDist('demo-dep', { version: '2.0' }), buildDist('demo-app'),
    ]);
    dep1 = d1.wheel;
    depSdist = d1.sdist!;
    dep2 = d2.wheel;
    app = a.wheel;
    files = [
      { project: 'demo-dep', dist: dep1, metadata: await wheelMetadata(dep1.path), requiresPython: '>=3.7' },
      { project: 'demo-dep', dist: depSdist, requiresPython: '>=3.7' },
      // 2.0 is yanked upstream: pip must keep choosing 1.0 for `demo-dep>=1.0`.
      { project: 'demo-dep', dist: dep2, metadata: await wheelMetadata(dep2.path), requiresPython: '>=3.7', yanked: 'broken <build>' },
      { project: 'Demo_App', dist: app, metadata: await wheelMetadata(app.path), requiresPython: '>=3.7' },
    ];
    srv = await startServer();
  }, 120_000);
  afterAll(async () => {
    await srv?.close();
    for (const u of ups) await u.close();
  });

  it('pip installs a package and its dependency through the proxy; files are then served from the cache', async () => {
    const up = await pypiUpstream(files);
    ups.push(up);
    await srv.addRepo({ name: 'pyr', format: 'pypi', kind: 'remote', upstream: up.index.url }); // index root: /simple/ appended

    const first = await pipInstall(`${srv.url}/pyr/simple/`, ['demo-app']);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    expect(first.stdout).toMatch(/Successfully installed .*demo-dep-1\.0\b/i);
    expect(await pyEval(first.target, 'import demo_app; print(demo_app.APP)')).toBe('demo-app sees demo-dep 1.0');
    const fileHits = up.files.count('/files/');
    expect(up.files.count(`/files/demo-dep/${dep1.filename}`)).toBe(1);
    expect(up.files.count(`/files/Demo_App/${app.filename}`)).toBe(1);
    expect(up.files.count(`/files/demo-dep/${dep2.filename}`)).toBe(0); // yanked: never chosen

    const second = await pipInstall(`${srv.url}/pyr/simple/`, ['demo-app']);
    expect(second.code, second.stdout + second.stderr).toBe(0);
    expect(up.files.count('/files/')).toBe(fileHits);
    const cached = await fetch(`${srv.url}/pyr/packages/demo-dep/${dep1.filename}`);
    expect(cached.headers.get('x-artifact-source')).toBe('cache');
    expect(sha(Buffer.from(await cached.arrayBuffer()))).toBe(dep1.sha256);
  }, 120_000);

  it('rewrites every file URL to this server, keeping sha256, requires-python, metadata and yanked (HTML and JSON)', async () => {
    const html = await (await fetch(`${srv.url}/pyr/simple/demo-dep/`)).text();
    const base = `${srv.url}/pyr/packages/demo-dep/`;
    expect(html).toContain(`href="${base}${dep1.filename}#sha256=${dep1.sha256}"`);
    expect(html).toContain(`href="${base}${depSdist.filename}#sha256=${depSdist.sha256}"`);
    expect(html).not.toMatch(/127\.0\.0\.1:(?!\d+\/pyr\/)/); // no upstream host left
    expect(html).toContain('data-requires-python="&gt;=3.7"');
    expect(html).toContain(`data-dist-info-metadata="sha256=${sha(files[0].metadata!)}"`);
    expect(html).toContain(`data-core-metadata="sha256=${sha(files[0].metadata!)}"`);
    expect(html).toContain('data-yanked="broken &lt;build&gt;"');

    const j = await (await fetch(`${srv.url}/pyr/simple/demo-dep/`, { headers: { accept: JSON_ACCEPT } })).json();
    const byName = Object.fromEntries(j.files.map((f: { filename: string }) => [f.filename, f]));
    expect(byName[dep1.filename]).toMatchObject({ url: `${base}${dep1.filename}`, hashes: { sha256: dep1.sha256 }, 'requires-python': '>=3.7', yanked: false });
    expect(byName[dep1.filename]['core-metadata']).toEqual({ sha256: sha(files[0].metadata!) });
    expect(byName[dep2.filename].yanked).toBe('broken <build>');
    expect(byName[depSdist.filename]['core-metadata']).toBeUndefined();

    // PEP 658 metadata through the proxy, verified and cached.
    const meta = await fetch(`${base}${dep2.filename}.metadata`);
    expect(meta.status).toBe(200);
    expect(sha(Buffer.from(await meta.arrayBuffer()))).toBe(sha(files[2].metadata!));
    expect((await fetch(`${base}${depSdist.filename}.metadata`)).status).toBe(404);

    // Names are normalised: the upstream's Demo_App is served at demo-app.
    const r = await fetch(`${srv.url}/pyr/simple/Demo_App/`, { redirect: 'manual' });
    expect(r.status).toBe(301);
    expect(await (await fetch(`${srv.url}/pyr/simple/demo-app/`)).text()).toContain(`${srv.url}/pyr/packages/demo-app/${app.filename}#sha256=${app.sha256}`);
    expect((await fetch(`${srv.url}/pyr/simple/not-there/`)).status).toBe(404);
    const root = await (await fetch(`${srv.url}/pyr/simple/`)).text();
    expect(root).toContain(`href="${srv.url}/pyr/simple/demo-dep/"`);
  });

  it.skipIf(!PYTHON_PEP714)('lets a PEP 714 pip resolve from .metadata files, verified and cached by the proxy', async () => {
    const up = await pypiUpstream(files, { json: true });
    ups.push(up);
    await srv.addRepo({ name: 'pym', format: 'pypi', kind: 'remote', upstream: up.index.url });
    const pip = await pipInstall(`${srv.url}/pym/simple/`, ['demo-app'], [], PYTHON_PEP714!);
    expect(pip.code, pip.stdout + pip.stderr).toBe(0);
    expect(pip.stdout).toMatch(/Successfully installed .*demo-dep-1\.0\b/i);
    // pip asked this server for the metadata (proxied from the upstream once), then for the wheels it installs.
    expect(up.files.hits.get(`GET /files/demo-dep/${dep1.filename}.metadata`)).toBe(1);
    expect(up.files.hits.get(`GET /files/Demo_App/${app.filename}.metadata`)).toBe(1);
    expect(up.files.hits.get(`GET /files/demo-dep/${dep1.filename}`)).toBe(1);
    expect(up.files.hits.get(`GET /files/demo-dep/${dep2.filename}.metadata`)).toBeUndefined(); // yanked 2.0 never considered
    const cached = await srv.svc.meta.files.get('pym', `packages/demo-dep/${dep1.filename}.metadata`);
    expect(cached?.digest).toBe(`sha256:${sha(files[0].metadata!)}`);
  }, 120_000);

  it('proxies a PEP 691 JSON upstream given as its /simple/ URL', async () => {
    const up = await pypiUpstream(files, { json: true });
    ups.push(up);
    await srv.addRepo({ name: 'pyj', format: 'pypi', kind: 'remote', upstream: `${up.index.url}/simple/` });
    const res = await fetch(`${srv.url}/pyj/simple/demo-dep/`);
    const html = await res.text();
    expect(html).toContain(`${srv.url}/pyj/packages/demo-dep/${dep1.filename}#sha256=${dep1.sha256}`);
    expect(html).toContain('data-yanked="broken &lt;build&gt;"');
    expect(html).toContain(`data-core-metadata="sha256=${sha(files[0].metadata!)}"`);
    expect(up.index.count('/simple/simple/')).toBe(0);
    const pip = await pipInstall(`${srv.url}/pyj/simple/`, ['demo-app']);
    expect(pip.code, pip.stdout + pip.stderr).toBe(0);
    expect(pip.stdout).toMatch(/Successfully installed .*demo-dep-1\.0\b/i);
  }, 120_000);

  it('revalidates with ETag after the TTL and serves the stale index when the upstream is down', async () => {
    const up = await pypiUpstream(files);
    ups.push(up);
    await srv.addRepo({ name: 'pys', format: 'pypi', kind: 'remote', upstream: up.index.url, metadata_ttl: '300ms' });
    const warm = await pipInstall(`${srv.url}/pys/simple/`, ['demo-app']);
    expect(warm.code, warm.stdout + warm.stderr).toBe(0);

    // Revalidation after the TTL: a conditional request, answered 304.
    await new Promise((r) => setTimeout(r, 400));
    const conditional: (string | undefined)[] = [];
    const h = upstreamIndex(() => files, () => up.files.url);
    up.index.handle((req, res) => {
      conditional.push(req.headers['if-none-match']);
      return h.index(req, res);
    });
    const reval = await fetch(`${srv.url}/pys/simple/demo-dep/`);
    expect(reval.status).toBe(200);
    expect(conditional).toHaveLength(1);
    expect(conditional[0]).toMatch(/^"[0-9a-f]+"$/);

    // Upstream down (index and files): the cached pages and files still install.
    up.index.handle((_req, res) => { res.writeHead(503).end('down'); });
    up.files.handle((_req, res) => { res.destroy(); });
    await new Promise((r) => setTimeout(r, 400));
    const stale = await fetch(`${srv.url}/pys/simple/demo-dep/`);
    expect(stale.status).toBe(200);
    expect(stale.headers.get('x-artifact-stale')).toBe('true');
    expect(await stale.text()).toContain(`${dep1.filename}#sha256=${dep1.sha256}`);
    const offline = await pipInstall(`${srv.url}/pys/simple/`, ['demo-app']);
    expect(offline.code, offline.stdout + offline.stderr).toBe(0);
    // Nothing cached for this name: 502, not a 404 that would hide the outage.
    expect((await fetch(`${srv.url}/pys/simple/never-fetched/`)).status).toBeGreaterThanOrEqual(502);
  }, 120_000);

  it('refuses a file whose bytes do not match the sha256 the index lists, caching nothing', async () => {
    const bad: UpstreamFile[] = [{ project: 'demo-dep', dist: dep1, listedSha256: sha('not the wheel') }];
    const up = await pypiUpstream(bad);
    ups.push(up);
    await srv.addRepo({ name: 'pybad', format: 'pypi', kind: 'remote', upstream: up.index.url });
    const r = await fetch(`${srv.url}/pybad/packages/demo-dep/${dep1.filename}`);
    // Either refused outright or, while streaming the first fetch, cut short before the last byte: never a complete transfer.
    const complete = r.status === 200 && (await r.arrayBuffer().then(() => true, () => false));
    expect(complete).toBe(false);
    const again = await fetch(`${srv.url}/pybad/packages/demo-dep/${dep1.filename}`);
    expect(await again.arrayBuffer().then(() => again.status, () => 'cut')).not.toBe(200);
    expect(await srv.svc.meta.files.get('pybad', `packages/demo-dep/${dep1.filename}`)).toBeNull();
    const pip = await pipInstall(`${srv.url}/pybad/simple/`, ['demo-dep']);
    expect(pip.code).not.toBe(0);
    // Fixed upstream: the right bytes go in.
    bad[0].listedSha256 = undefined;
    await new Promise((r) => setTimeout(r, 10));
    const page = await fetch(`${srv.url}/pybad/simple/demo-dep/`);
    expect(await page.text()).toContain(`#sha256=${sha('not the wheel')}`); // page still cached for its TTL
  }, 120_000);

  it('fetches an uncached file once for concurrent requests', async () => {
    const up = await pypiUpstream(files);
    ups.push(up);
    await srv.addRepo({ name: 'pyc', format: 'pypi', kind: 'remote', upstream: up.index.url });
    const got = await Promise.all(Array.from({ length: 8 }, () => fetch(`${srv.url}/pyc/packages/demo-dep/${dep2.filename}`).then(async (r) => ({ status: r.status, sha: sha(Buffer.from(await r.arrayBuffer())) }))));
    for (const g of got) expect(g).toEqual({ status: 200, sha: dep2.sha256 });
    expect(up.files.count(`/files/demo-dep/${dep2.filename}`)).toBe(1);
    expect(up.index.count('/simple/demo-dep/')).toBe(1);
    // A filename the upstream does not list is 404, without asking the files host.
    expect((await fetch(`${srv.url}/pyc/packages/demo-dep/demo_dep-9.9-py3-none-any.whl`)).status).toBe(404);
    expect(up.files.count('/files/demo-dep/demo_dep-9.9')).toBe(0);
  });
});
