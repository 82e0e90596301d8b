import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { startUpstream, type FakeUpstream } from '../../helpers/upstream.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** A remote repo's upstream page is parsed once per stored copy (svc.parsedDocs, keyed by its blob digest), not per request. */
describe('pypi remote: parsed upstream pages are kept in svc.parsedDocs', () => {
  let srv: TestServer;
  let up: FakeUpstream;
  let version = '1.0';
  const file = () => Buffer.from(`sdist of demo ${version}`);

  beforeAll(async () => {
    up = await startUpstream((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const base = `http://${req.headers.host}`;
      if (path === '/simple/') res.writeHead(200, { 'content-type': 'text/html' }).end('<a href="/simple/demo/">demo</a>');
      else if (path === '/simple/demo/') {
        res.writeHead(200, { 'content-type': 'text/html' })
          .end(`<a href="${base}/f/demo-${version}.tar.gz#sha256=${sha(file())}">demo-${version}.tar.gz</a>`);
      } else if (path === `/f/demo-${version}.tar.gz`) res.writeHead(200).end(file());
      else res.writeHead(404).end('not found');
    });
    srv = await startServer();
    // A TTL no slow run outlives for the counting test; a short one where the page must change.
    await srv.addRepo({ name: 'pr', format: 'pypi', kind: 'remote', upstream: up.url, metadata_ttl: '1h' });
    await srv.addRepo({ name: 'pr2', format: 'pypi', kind: 'remote', upstream: up.url, metadata_ttl: '1s' });
  });
  afterAll(async () => {
    await srv?.close();
    await up?.close();
  });

  const parsedPage = async (path: string, repo = 'pr') => {
    const rec = await srv.svc.meta.files.get(repo, path);
    expect(rec).not.toBeNull();
    return { digest: rec!.digest, doc: srv.svc.parsedDocs.get(`pypi-${path === 'simple/index' ? 'root' : 'project'}:${repo}:${rec!.digest}`) };
  };

  it('serves a project page, its file and /simple/ many times from one upstream fetch and one parse each', async () => {
    for (let i = 0; i < 5; i++) {
      const page = await fetch(`${srv.url}/pr/simple/demo/`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain(`${srv.url}/pr/packages/demo/demo-1.0.tar.gz#sha256=${sha(file())}`);
    }
    const first = await parsedPage('simple/demo');
    expect(first.doc).toMatchObject({ name: 'demo', files: [{ filename: 'demo-1.0.tar.gz', hashes: { sha256: sha(file()) } }] });
    // A download looks its entry up in the same parsed page.
    const dl = await fetch(`${srv.url}/pr/packages/demo/demo-1.0.tar.gz`);
    expect(dl.status).toBe(200);
    expect(Buffer.from(await dl.arrayBuffer())).toEqual(file());
    for (let i = 0; i < 3; i++) expect((await fetch(`${srv.url}/pr/simple/demo/`)).status).toBe(200);
    // Not parsed again: the very same object is still the cached parse of that stored copy.
    expect((await parsedPage('simple/demo')).doc).toBe(first.doc);
    expect(up.count('/simple/demo/')).toBe(1);

    for (let i = 0; i < 3; i++) expect(await (await fetch(`${srv.url}/pr/simple/`)).text()).toContain(`${srv.url}/pr/simple/demo/`);
    const root = await parsedPage('simple/index');
    expect(root.doc).toEqual({ projects: ['demo'] });
    expect((await fetch(`${srv.url}/pr/simple/`)).status).toBe(200);
    expect((await parsedPage('simple/index')).doc).toBe(root.doc);
    expect(up.count('/simple/')).toBe(2); // the root once, the project page once
  });

  it('parses again only when the upstream page changed (a new stored copy, a new digest)', async () => {
    expect(await (await fetch(`${srv.url}/pr2/simple/demo/`)).text()).toContain('demo-1.0.tar.gz');
    const before = await parsedPage('simple/demo', 'pr2');
    expect(before.doc).toMatchObject({ files: [{ filename: 'demo-1.0.tar.gz' }] });
    version = '2.0';
    await new Promise((r) => setTimeout(r, 1100)); // past pr2's metadata_ttl
    const page = await (await fetch(`${srv.url}/pr2/simple/demo/`)).text();
    expect(page).toContain('demo-2.0.tar.gz');
    expect(page).not.toContain('demo-1.0.tar.gz');
    const after = await parsedPage('simple/demo', 'pr2');
    expect(after.digest).not.toBe(before.digest);
    expect(after.doc).toMatchObject({ files: [{ filename: 'demo-2.0.tar.gz' }] });
    // The same bytes again (refetched or not) map to the same parsed object.
    expect((await fetch(`${srv.url}/pr2/simple/demo/`)).status).toBe(200);
    expect((await parsedPage('simple/demo', 'pr2')).doc).toBe(after.doc);
  });
});
