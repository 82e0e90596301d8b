import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { startUpstream } from '../../helpers/upstream.js';
import { buildDist, pipInstall, PYTHON, pyEval, twineUpload, wheelMetadata, which, type Dist } from './clients.js';
import { upstreamIndex, type UpstreamFile } from './upstream-index.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const JSON_ACCEPT = 'application/vnd.pypi.simple.v1+json';

async function pypiUpstream(files: UpstreamFile[]) {
  let filesUrl = '';
  const h = upstreamIndex(() => files, () => filesUrl);
  const filesSrv = await startUpstream(h.filesHandler);
  filesUrl = filesSrv.url;
  const index = await startUpstream(h.index);
  return { index, files: filesSrv, close: async () => { await index.close(); await filesSrv.close(); } };
}

/** Every file a merged page lists (HTML and JSON), fetched through the page's own URLs, must come back with the listed sha256. */
async function assertPageServesWhatItLists(srv: TestServer, repo: string, project: string): Promise<number> {
  const html = await (await fetch(`${srv.url}/${repo}/simple/${project}/`)).text();
  const anchors = [...html.matchAll(/<a href="([^"#]+)#sha256=([a-f0-9]{64})"([^>]*)>/g)];
  const j = await (await fetch(`${srv.url}/${repo}/simple/${project}/`, { headers: { accept: JSON_ACCEPT } })).json();
  expect(j.files).toHaveLength(anchors.length);
  for (const [, url, hex, attrs] of anchors) {
    const r = await fetch(url);
    expect(r.status, url).toBe(200);
    expect(sha(Buffer.from(await r.arrayBuffer())), url).toBe(hex);
    const m = /data-core-metadata="sha256=([a-f0-9]{64})"/.exec(attrs);
    if (m) {
      const meta = await fetch(`${url}.metadata`);
      expect(meta.status, `${url}.metadata`).toBe(200);
      expect(sha(Buffer.from(await meta.arrayBuffer()))).toBe(m[1]);
    }
    const jf = j.files.find((f: { url: string }) => f.url === url);
    expect(jf?.hashes.sha256).toBe(hex);
  }
  return anchors.length;
}

describe.skipIf(!PYTHON || !which('twine'))('pypi virtual repository', () => {
  let srv: TestServer;
  let app: Dist;
  let dep1: Dist;
  let dep1b: Dist; // same filename as dep1, other bytes
  let dep1local: Dist; // same filename again, published privately
  let dep2: Dist;
  const closers: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    const built = await Promise.all([
      buildDist('demo-app'),
      buildDist('demo-dep'),
      buildDist('demo-dep', { files: { 'demo_dep/__init__.py': 'VALUE = "demo-dep 1.0 from the second remote"\n' } }),
      buildDist('demo-dep', { files: { 'demo_dep/__init__.py': 'VALUE = "demo-dep 1.0 private"\n' } }),
      buildDist('demo-dep', { version: '2.0', files: { 'demo_dep/__init__.py': 'VALUE = "demo-dep 2.0 public"\n' } }),
    ]);
    [app, dep1, dep1b, dep1local, dep2] = built.map((b) => b.wheel);
    expect(new Set([dep1.sha256, dep1b.sha256, dep1local.sha256]).size).toBe(3);
    expect(new Set([dep1.filename, dep1b.filename, dep1local.filename]).size).toBe(1);

    srv = await startServer();
    const a = await pypiUpstream([
      { project: 'demo-dep', dist: dep1, metadata: await wheelMetadata(dep1.path), requiresPython: '>=3.7' },
    ]);
    const b = await pypiUpstream([
      { project: 'demo-dep', dist: dep1b, metadata: await wheelMetadata(dep1b.path) },
      { project: 'demo-dep', dist: dep2, metadata: await wheelMetadata(dep2.path) },
    ]);
    closers.push(a.close, b.close);
    await srv.addRepo({ name: 'pl', format: 'pypi', kind: 'local' });
    await srv.addRepo({ name: 'pl-private', format: 'pypi', kind: 'local' });
    await srv.addRepo({ name: 'pr-a', format: 'pypi', kind: 'remote', upstream: a.index.url });
    await srv.addRepo({ name: 'pr-b', format: 'pypi', kind: 'remote', upstream: `${b.index.url}/simple` });
    await srv.addRepo({ name: 'pv', format: 'pypi', kind: 'virtual', members: ['pl', 'pr-a', 'pr-b'], default_local: 'pl' });
    await srv.addRepo({ name: 'pv-private', format: 'pypi', kind: 'virtual', members: ['pl-private', 'pr-a', 'pr-b'] });
    await srv.addRepo({ name: 'pv-allow', format: 'pypi', kind: 'virtual', members: ['pl-private', 'pr-b'], allow_shadowed: ['demo-dep'] });
    const up = await twineUpload(`${srv.url}/pv/`, [app.path]); // through the virtual repo: lands in default_local
    expect(up.code, up.stdout + up.stderr).toBe(0);
    const up2 = await twineUpload(`${srv.url}/pl-private/`, [dep1local.path]);
    expect(up2.code, up2.stdout + up2.stderr).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await srv?.close();
    for (const c of closers) await c();
  });

  it('pip installs a local package whose dependency comes from a remote member', async () => {
    expect(await srv.svc.meta.files.get('pl', `packages/demo-app/${app.filename}`)).not.toBeNull();
    const pip = await pipInstall(`${srv.url}/pv/simple/`, ['demo-app', 'demo-dep<2']);
    expect(pip.code, pip.stdout + pip.stderr).toBe(0);
    expect(await pyEval(pip.target, 'import demo_app; print(demo_app.APP)')).toBe('demo-app sees demo-dep 1.0');
    const appFile = await fetch(`${srv.url}/pv/packages/demo-app/${app.filename}`);
    expect(appFile.headers.get('x-artifact-repo')).toBe('pl');
    const depFile = await fetch(`${srv.url}/pv/packages/demo-dep/${dep1.filename}`);
    expect(depFile.headers.get('x-artifact-repo')).toBe('pr-a');
  }, 120_000);

  it('merges pages as a union by filename where the first member wins, and downloads from that member', async () => {
    const html = await (await fetch(`${srv.url}/pv/simple/demo-dep/`)).text();
    expect(html).toContain(`${srv.url}/pv/packages/demo-dep/${dep1.filename}#sha256=${dep1.sha256}`); // pr-a's bytes
    expect(html).not.toContain(dep1b.sha256);
    expect(html).toContain(`${srv.url}/pv/packages/demo-dep/${dep2.filename}#sha256=${dep2.sha256}`); // only pr-b has 2.0
    const r = await fetch(`${srv.url}/pv/packages/demo-dep/${dep1.filename}`);
    expect(sha(Buffer.from(await r.arrayBuffer()))).toBe(dep1.sha256);
    const r2 = await fetch(`${srv.url}/pv/packages/demo-dep/${dep2.filename}`);
    expect(r2.headers.get('x-artifact-repo')).toBe('pr-b');
    const root = await (await fetch(`${srv.url}/pv/simple/`)).text();
    expect(root).toContain(`${srv.url}/pv/simple/demo-app/`);
    expect(root).toContain(`${srv.url}/pv/simple/demo-dep/`);
  });

  it('hides remote files for a name a local member publishes (dependency confusion), unless allow-listed', async () => {
    const html = await (await fetch(`${srv.url}/pv-private/simple/demo-dep/`)).text();
    expect(html).toContain(`#sha256=${dep1local.sha256}`);
    expect(html).not.toContain(dep2.filename); // the public 2.0 is not offered...
    expect((await fetch(`${srv.url}/pv-private/packages/demo-dep/${dep2.filename}`)).status).toBe(404); // ...nor served
    const pip = await pipInstall(`${srv.url}/pv-private/simple/`, ['demo-dep']);
    expect(pip.code, pip.stdout + pip.stderr).toBe(0);
    expect(await pyEval(pip.target, 'import demo_dep; print(demo_dep.VALUE)')).toBe('demo-dep 1.0 private');

    const allowed = await (await fetch(`${srv.url}/pv-allow/simple/demo-dep/`)).text();
    expect(allowed).toContain(`#sha256=${dep1local.sha256}`); // same filename: the local member (first) wins
    expect(allowed).toContain(`${dep2.filename}#sha256=${dep2.sha256}`);
    const got = await fetch(`${srv.url}/pv-allow/packages/demo-dep/${dep1.filename}`);
    expect(got.headers.get('x-artifact-repo')).toBe('pl-private');
    expect(sha(Buffer.from(await got.arrayBuffer()))).toBe(dep1local.sha256);
  }, 120_000);

  it('never lists a file that its own download path cannot serve', async () => {
    let n = 0;
    for (const repo of ['pv', 'pv-private', 'pv-allow']) {
      for (const project of ['demo-dep', 'demo-app']) {
        if ((await fetch(`${srv.url}/${repo}/simple/${project}/`)).status === 404) continue;
        n += await assertPageServesWhatItLists(srv, repo, project);
      }
    }
    expect(n).toBeGreaterThanOrEqual(6);
  });

  it('refuses writes to a virtual repo without default_local (405)', async () => {
    const up = await twineUpload(`${srv.url}/pv-private/`, [dep2.path]);
    expect(up.code).not.toBe(0);
    expect(up.stdout + up.stderr).toMatch(/405/);
  }, 60_000);
});
