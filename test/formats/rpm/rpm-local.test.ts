import { rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGc } from '../../../src/maintenance/gc.js';
import { startServer, type TestServer } from '../../helpers/server.js';
import { buildFixtureRpms, createrepo, dnf, HAVE_CREATEREPO, HAVE_DNF, HAVE_RPMBUILD, packageBlocks, readRepodata, tempDir } from './rpms.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

let srv: TestServer;
let dir: string;
let rpms: Map<string, Buffer>;
let repoUrl: string;
const LIB = 'hello-lib-1.2.0-3.noarch.rpm';
const TOOL = 'hello-tool-2.0-1.noarch.rpm';

beforeAll(async () => {
  dir = tempDir();
  if (HAVE_RPMBUILD) rpms = buildFixtureRpms(dir);
  srv = await startServer();
  await srv.addRepo({ name: 'rl', format: 'rpm', kind: 'local' });
  repoUrl = `${srv.url}/rl`;
});
afterAll(async () => {
  await srv?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function put(path: string, body: Buffer, repo = 'rl'): Promise<Response> {
  return fetch(`${srv.url}/${repo}/${path}`, { method: 'PUT', body: new Uint8Array(body) });
}

async function rowPaths(repo: string): Promise<string[]> {
  const out: string[] = [];
  for await (const f of srv.svc.meta.files.list(repo)) out.push(f.path);
  return out;
}

describe.skipIf(!HAVE_RPMBUILD)('rpm local repo', () => {
  it('an empty repo serves valid, empty repodata', async () => {
    await srv.addRepo({ name: 'rl-empty', format: 'rpm', kind: 'local' });
    const { xml, repomd } = await readRepodata(`${srv.url}/rl-empty`);
    expect(xml.primary).toContain('packages="0"');
    expect(repomd).toContain('<revision>0</revision>');
  });

  it('PUT stores a package and answers with its parsed identity', async () => {
    const res = await put(LIB, rpms.get(LIB)!);
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({
      repo: 'rl', path: LIB, name: 'hello-lib', epoch: '1', version: '1.2.0', release: '3', arch: 'noarch',
      sha256: sha(rpms.get(LIB)!), size: rpms.get(LIB)!.length,
    });
    expect((await put(`tools/${TOOL}`, rpms.get(TOOL)!)).status).toBe(201);
    const got = await fetch(`${repoUrl}/tools/${TOOL}`);
    expect(got.status).toBe(200);
    expect(got.headers.get('content-type')).toBe('application/x-rpm');
    expect(sha(Buffer.from(await got.arrayBuffer()))).toBe(sha(rpms.get(TOOL)!));
  });

  it.skipIf(!HAVE_CREATEREPO)('primary, filelists and other match createrepo_c for the same RPMs, package by package, line by line', async () => {
    const ours = await readRepodata(repoUrl);
    const ref = createrepo(dir, new Map([[LIB, rpms.get(LIB)!], [`tools/${TOOL}`, rpms.get(TOOL)!]]));
    for (const type of ['primary', 'filelists', 'other'] as const) {
      const a = packageBlocks(ours.xml[type]);
      const b = packageBlocks(ref.xml[type]);
      expect([...a.keys()].sort(), type).toEqual([...b.keys()].sort());
      for (const [id, lines] of b) expect(a.get(id), `${type} ${id}`).toEqual(lines);
      expect(ours.xml[type].split('\n').slice(0, 2), type).toEqual(ref.xml[type].split('\n').slice(0, 2));
    }
    // What the fixtures are there to exercise, so a fixture change cannot make the comparison vacuous.
    expect(ours.xml.primary).toContain('<rpm:entry name="hello-lib" pre="1"/>');
    expect(ours.xml.primary).toContain('<rpm:entry name="hello-lib" flags="GE" epoch="1" ver="1.2.0"/>');
    expect(ours.xml.primary).toMatch(/<rpm:recommends>[\s\S]*hello-docs/);
    expect(ours.xml.primary).toMatch(/<rpm:supplements>[\s\S]*hello-integration/);
    expect(ours.xml.filelists).toContain('<file type="ghost">/var/log/hello-lib.log</file>');
    expect(ours.xml.filelists).toContain('<file type="dir">/usr/share/hello-lib</file>');
    expect(ours.xml.other).toContain('Third release, with &lt;angle&gt; &amp; "quotes"');
  });

  it('repomd.xml keeps its bytes and ETag between writes (304 with If-None-Match)', async () => {
    const a = await fetch(`${repoUrl}/repodata/repomd.xml`);
    const etag = a.headers.get('etag')!;
    const body = await a.text();
    const b = await fetch(`${repoUrl}/repodata/repomd.xml`, { headers: { 'if-none-match': etag } });
    expect(b.status).toBe(304);
    expect(await (await fetch(`${repoUrl}/repodata/repomd.xml`)).text()).toBe(body);
  });

  it.skipIf(!HAVE_DNF)('dnf resolves and installs a package with its dependency', async () => {
    const d = tempDir();
    try {
      const out = await dnf(d, `${repoUrl}/`, ['install', 'hello-tool']);
      expect(out).toMatch(/hello-lib/);
      const q = await dnf(d, `${repoUrl}/`, ['repoquery', '--installed', '--qf', '%{name}-%{epoch}:%{version}-%{release}']);
      expect(q).toContain('hello-tool-0:2.0-1');
      expect(q).toContain('hello-lib-1:1.2.0-3');
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('refuses what is not an RPM, a truncated one and a header over the bound with 400, changing nothing', async () => {
    const before = await (await fetch(`${repoUrl}/repodata/repomd.xml`)).text();
    const rows = await rowPaths('rl');
    const lib = rpms.get(LIB)!;
    const huge = Buffer.from(lib.subarray(0, 6000));
    // The main header's store size, right after the padded signature, claims 1 GiB.
    const sigSize = 16 + lib.readUInt32BE(96 + 8) * 16 + lib.readUInt32BE(96 + 12);
    huge.writeUInt32BE(1 << 30, 96 + sigSize + ((8 - (sigSize % 8)) % 8) + 12);
    const bad: [string, Buffer][] = [
      ['not an rpm', Buffer.from('hello, not a package')],
      ['empty', Buffer.alloc(0)],
      ['truncated in the header', lib.subarray(0, 2000)],
      ['header over the bound', huge],
      ['bad header magic', Buffer.concat([lib.subarray(0, 96), Buffer.alloc(64)])],
    ];
    for (const [what, body] of bad) {
      const res = await put(`bad/${what.replace(/ /g, '-')}.rpm`, body);
      expect(res.status, what).toBe(400);
      expect((await res.json()).error.code, what).toBe('BAD_REQUEST');
    }
    expect(await rowPaths('rl')).toEqual(rows);
    expect(await (await fetch(`${repoUrl}/repodata/repomd.xml`)).text()).toBe(before);
    expect((await put('repodata/x.rpm', lib)).status).toBe(400);
    expect((await put('x.txt', lib)).status).toBe(400);
  });

  it('the same path twice is 409', async () => {
    const res = await put(LIB, rpms.get(LIB)!);
    expect(res.status).toBe(409);
  });

  it('DELETE updates repodata; the previous generation stays readable until gc', async () => {
    const old = await readRepodata(repoUrl);
    const del = await fetch(`${repoUrl}/tools/${TOOL}`, { method: 'DELETE' });
    expect(del.status).toBe(204);
    expect((await fetch(`${repoUrl}/tools/${TOOL}`)).status).toBe(404);
    const now = await readRepodata(repoUrl);
    expect(now.xml.primary).toContain('packages="1"');
    expect(now.xml.primary).not.toContain('hello-tool');
    // A client that read the old repomd.xml a moment ago still gets every file it names.
    for (const href of old.hrefs) expect((await fetch(`${repoUrl}/${href}`)).status, href).toBe(200);
    await runGc(srv.svc, { now: Date.now() + srv.config.gc.grace + 1000 });
    for (const href of old.hrefs) expect((await fetch(`${repoUrl}/${href}`)).status, href).toBe(404);
    for (const href of now.hrefs) expect((await fetch(`${repoUrl}/${href}`)).status, href).toBe(200);
    expect((await fetch(`${repoUrl}/tools/${TOOL}`, { method: 'DELETE' })).status).toBe(404);
  });

  it('a burst of concurrent uploads ends with every package in primary.xml', async () => {
    await srv.addRepo({ name: 'rl-burst', format: 'rpm', kind: 'local' });
    const paths = Array.from({ length: 12 }, (_, i) => `b${i}/${LIB}`);
    const statuses = await Promise.all(paths.map(async (p) => (await put(p, rpms.get(LIB)!, 'rl-burst')).status));
    expect(statuses).toEqual(paths.map(() => 201));
    const { xml } = await readRepodata(`${srv.url}/rl-burst`);
    expect([...xml.primary.matchAll(/<location href="([^"]+)"/g)].map((m) => m[1]).sort()).toEqual([...paths].sort());
    // Uploads that arrive while repodata renders share the next rendering: fewer generations than uploads.
    const generations = (await rowPaths('rl-burst')).filter((p) => p.endsWith('-primary.xml.gz'));
    expect(generations.length).toBeLessThan(paths.length);
  });

  it('writes to a remote repo are refused with 405', async () => {
    await srv.addRepo({ name: 'rr', format: 'rpm', kind: 'remote', upstream: 'http://127.0.0.1:9/' });
    const res = await put(LIB, rpms.get(LIB)!, 'rr');
    expect(res.status).toBe(405);
  });
});
