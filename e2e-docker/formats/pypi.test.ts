import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { zip } from '../lib/archive.js';
import { run, scratch, which } from '../lib/clients.js';
import { clientCredentials, createRepo, deleteRepos, get, http, sha256hex, upstreamHits, type Reply } from '../lib/api.js';
import { BASE, fixture, repoName, UPSTREAM_FOR_SERVER } from '../lib/env.js';

/**
 * pypi: the simple repository API (PEP 503/691) and twine's upload API.
 * Remote: `fixtures/pypi/simple/e2e-tiny/index.html` links a small wheel with `#sha256=`.
 */
const JSON_TYPE = 'application/vnd.pypi.simple.v1+json';

/** Hrefs of the anchors of a PEP 503 page. */
const links = (html: string) => [...html.matchAll(/<a\s[^>]*href="([^"]+)"/g)].map((m) => m[1].replace(/&amp;/g, '&'));
/** A link as a path on ARTIFACTAPI_URL (links are absolute, built from the request's host). */
const pathOf = (href: string) => new URL(href, 'http://x/').pathname;

function wheel(project: string, version: string): { filename: string; body: Buffer; metadata: Buffer } {
  const mod = project.replace(/-/g, '_');
  const info = `${mod}-${version}.dist-info`;
  const metadata = Buffer.from(`Metadata-Version: 2.1\nName: ${project}\nVersion: ${version}\nSummary: e2e upload\nRequires-Python: >=3.9\n`);
  const body = zip({
    [`${mod}/__init__.py`]: `__version__ = "${version}"\n# ${randomBytes(8).toString('hex')}\n`,
    [`${info}/METADATA`]: metadata,
    [`${info}/WHEEL`]: 'Wheel-Version: 1.0\nGenerator: e2e\nRoot-Is-Purelib: true\nTag: py3-none-any\n',
    [`${info}/RECORD`]: '',
  });
  return { filename: `${mod}-${version}-py3-none-any.whl`, body, metadata };
}

/** What `twine upload` sends: multipart/form-data, metadata fields first, the file last as `content`. */
async function twineUpload(repoPath: string, project: string, version: string, file: { filename: string; body: Buffer }, over: Record<string, string> = {}): Promise<Reply> {
  const boundary = `----e2e${randomBytes(8).toString('hex')}`;
  const fields: Record<string, string> = {
    ':action': 'file_upload', protocol_version: '1', metadata_version: '2.1', name: project, version,
    filetype: 'bdist_wheel', pyversion: 'py3', requires_python: '>=3.9',
    md5_digest: createHash('md5').update(file.body).digest('hex'), sha256_digest: sha256hex(file.body), ...over,
  };
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  }
  parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="content"; filename="${file.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`));
  parts.push(file.body, Buffer.from(`\r\n--${boundary}--\r\n`));
  return http('POST', repoPath, { body: Buffer.concat(parts), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } });
}

const PYTHON = '/usr/bin/python3';
const hasPip = spawnSync(PYTHON, ['-m', 'pip', '--version'], { stdio: 'ignore' }).status === 0;
/** pip isolated from this machine's pip.conf and PIP_FIND_LINKS (see CLIENTS.md). */
const pip = (args: string[]) =>
  run(PYTHON, ['-m', 'pip', '--isolated', ...args], { env: { PIP_CONFIG_FILE: '/dev/null', PIP_FIND_LINKS: undefined, PIP_INDEX_URL: undefined } });

describe('pypi', () => {
  const local = repoName('pypi-local');
  const remote = repoName('pypi-remote');
  const virtual = repoName('pypi-virtual');
  const strict = repoName('pypi-strict');
  const whl = 'e2e_tiny-1.0.0-py3-none-any.whl';
  const expected = fixture(`pypi/packages/${whl}`);
  const upstreamPath = `/pypi/packages/${whl}`;

  beforeAll(async () => {
    await createRepo({ name: local, format: 'pypi', kind: 'local' });
    await createRepo({ name: remote, format: 'pypi', kind: 'remote', upstream: `${UPSTREAM_FOR_SERVER}/pypi/` });
    // A local member's project hides the remote's by default (dependency confusion); allow_shadowed merges them.
    await createRepo({ name: virtual, format: 'pypi', kind: 'virtual', members: [local, remote], default_local: local, allow_shadowed: ['e2e-tiny'] });
    await createRepo({ name: strict, format: 'pypi', kind: 'virtual', members: [local, remote] });
  });
  afterAll(async () => deleteRepos([strict, virtual, remote, local]));

  it('remote: the project page links the wheel here; the wheel comes from the upstream, then the cache', async () => {
    const page = await get(`/${remote}/simple/e2e-tiny/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('x-artifact-repo')).toBe(remote);
    const href = links(page.body.toString()).find((l) => l.includes(whl));
    expect(href).toBeTruthy();
    expect(pathOf(href!)).toBe(`/${remote}/packages/e2e-tiny/${whl}`);
    expect(href!.split('#')[1]).toBe(`sha256=${sha256hex(expected)}`);

    const j = await get(`/${remote}/simple/e2e-tiny/`, { accept: JSON_TYPE });
    expect(j.headers.get('content-type')).toContain(JSON_TYPE);
    const entry = j.json().files.find((f: any) => f.filename === whl);
    expect(entry.hashes.sha256).toBe(sha256hex(expected));
    expect(entry['requires-python']).toBe('>=3.8');

    const before = await upstreamHits(upstreamPath);
    const first = await get(pathOf(href!));
    expect(first.status).toBe(200);
    expect(first.headers.get('x-artifact-source')).toBe('remote');
    expect(first.headers.get('x-artifact-repo')).toBe(remote);
    expect(first.body.equals(expected)).toBe(true);

    const second = await get(pathOf(href!));
    expect(second.status).toBe(200);
    expect(second.headers.get('x-artifact-source')).toBe('cache');
    expect(second.headers.get('etag')).toBe(`"${sha256hex(expected)}"`);
    expect(second.body.equals(expected)).toBe(true);
    expect(await upstreamHits(upstreamPath)).toBe(before + 1);

    // A name that is not normalized redirects to the normalized page (PEP 503).
    const redirect = await fetch(`${BASE}/${remote}/simple/E2E_Tiny/`, { redirect: 'manual' });
    expect(redirect.status).toBe(301);
    expect(pathOf(redirect.headers.get('location')!)).toBe(`/${remote}/simple/e2e-tiny/`);
    expect((await get(`/${remote}/simple/no-such-project/`)).status).toBe(404);
  });

  it('local: twine-style upload, then the page, the file and its PEP 658 metadata; duplicates and bad digests are refused', async () => {
    const project = 'e2e-local';
    const w = wheel(project, '1.0.0');
    const up = await twineUpload(`/${local}/`, project, '1.0.0', w);
    expect(up.status).toBe(200);

    const page = await get(`/${local}/simple/${project}/`, { accept: JSON_TYPE });
    expect(page.status).toBe(200);
    expect(page.headers.get('x-artifact-source')).toBe('local');
    const entry = page.json().files.find((f: any) => f.filename === w.filename);
    expect(entry.hashes.sha256).toBe(sha256hex(w.body));
    expect(entry['requires-python']).toBe('>=3.9');
    expect(entry['core-metadata']).toEqual({ sha256: sha256hex(w.metadata) });

    const file = await get(pathOf(entry.url));
    expect(file.status).toBe(200);
    expect(file.headers.get('x-artifact-source')).toBe('local');
    expect(file.headers.get('x-artifact-repo')).toBe(local);
    expect(file.body.equals(w.body)).toBe(true);
    const meta = await get(`${pathOf(entry.url)}.metadata`);
    expect(meta.status).toBe(200);
    expect(meta.body.equals(w.metadata)).toBe(true);

    const root = await get(`/${local}/simple/`, { accept: JSON_TYPE });
    expect(root.json().projects.map((p: any) => p.name)).toContain(project);

    const again = await twineUpload(`/${local}/`, project, '1.0.0', w);
    expect(again.status).toBe(400);
    expect(again.body.toString()).toContain('File already exists');

    const w2 = wheel(project, '1.0.1');
    const bad = await twineUpload(`/${local}/`, project, '1.0.1', w2, { sha256_digest: sha256hex(Buffer.from('other')) });
    expect(bad.status).toBe(400);
    expect((await get(`/${local}/packages/${project}/${w2.filename}`)).status).toBe(404);

    // Remote repos take no uploads.
    expect((await twineUpload(`/${remote}/`, project, '1.0.1', w2)).status).toBe(405);
  });

  it('virtual: one merged page over the local and the remote member (allow_shadowed); uploads land in default_local', async () => {
    const w = wheel('e2e-tiny', '2.0.0');
    const up = await twineUpload(`/${virtual}/`, 'e2e-tiny', '2.0.0', w);
    expect(up.status).toBe(200);
    expect(up.json().repo).toBe(local);

    const page = await get(`/${virtual}/simple/e2e-tiny/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('x-artifact-repo')).toBe(virtual);
    const hrefs = links(page.body.toString()).map(pathOf);
    expect(hrefs).toContain(`/${virtual}/packages/e2e-tiny/${whl}`);
    expect(hrefs).toContain(`/${virtual}/packages/e2e-tiny/${w.filename}`);

    const mine = await get(`/${virtual}/packages/e2e-tiny/${w.filename}`);
    expect(mine.status).toBe(200);
    expect(mine.headers.get('x-artifact-repo')).toBe(local);
    expect(mine.body.equals(w.body)).toBe(true);

    const theirs = await get(`/${virtual}/packages/e2e-tiny/${whl}`);
    expect(theirs.status).toBe(200);
    expect(theirs.headers.get('x-artifact-repo')).toBe(remote);
    expect(theirs.body.equals(expected)).toBe(true);

    // The local member alone does not list the remote's file; nor does a virtual without allow_shadowed.
    const own = await get(`/${local}/simple/e2e-tiny/`);
    expect(links(own.body.toString()).map(pathOf)).toEqual([`/${local}/packages/e2e-tiny/${w.filename}`]);
    const shadowed = await get(`/${strict}/simple/e2e-tiny/`);
    expect(links(shadowed.body.toString()).map(pathOf)).toEqual([`/${strict}/packages/e2e-tiny/${w.filename}`]);
    expect((await get(`/${strict}/packages/e2e-tiny/${whl}`)).status).toBe(404);
    expect((await get(`/${virtual}/packages/e2e-tiny/e2e_tiny-9.9.9-py3-none-any.whl`)).status).toBe(404);
  });

  it.skipIf(!which('twine') || !hasPip)('real clients: twine uploads to the local repo, pip downloads both members through the virtual', async () => {
    const { user, password } = await clientCredentials();
    const tmp = scratch('pypi');
    try {
      const w = wheel('e2e-twine', '0.1.0');
      const file = join(tmp.dir, w.filename);
      writeFileSync(file, w.body);
      run('twine', ['upload', '--repository-url', `${BASE}/${local}/`, '-u', user, '-p', password, '--non-interactive', '--disable-progress-bar', file]);

      const out = join(tmp.dir, 'out');
      const index = ['--no-cache-dir', '--no-deps', '--index-url', `${BASE}/${virtual}/simple/`, '-d', out];
      pip(['download', ...index, 'e2e-twine==0.1.0']);
      pip(['download', ...index, 'e2e-tiny==1.0.0']);
      pip(['download', ...index, 'e2e-tiny==2.0.0']);
      expect(readdirSync(out).sort()).toEqual([w.filename, 'e2e_tiny-1.0.0-py3-none-any.whl', 'e2e_tiny-2.0.0-py3-none-any.whl'].sort());
      expect(readFileSync(join(out, w.filename)).equals(w.body)).toBe(true);
      expect(readFileSync(join(out, whl)).equals(expected)).toBe(true);
    } finally {
      tmp.done();
    }
  });
});
