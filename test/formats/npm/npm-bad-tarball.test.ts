import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';

let srv: TestServer;

beforeAll(async () => {
  srv = await startServer({ 'limits.unpacked_size': '1MiB' });
  await srv.addRepo({ name: 'npm-local', format: 'npm', kind: 'local' });
});
afterAll(() => srv.close());

type Entry = { name: string; body?: string | Buffer; type?: 'file' | 'symlink' | 'link' | 'directory'; linkname?: string };

/** A gzipped tarball of exactly these entries, built here (npm pack would refuse to make the bad ones). */
async function tgz(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => { chunks.push(c as Buffer); });
  const done = new Promise<void>((r) => pack.on('end', () => r()));
  for (const e of entries) {
    const body = e.body === undefined ? undefined : Buffer.from(e.body);
    await new Promise<void>((res, rej) => pack.entry({ name: e.name, type: e.type ?? 'file', linkname: e.linkname, size: body?.length ?? 0 }, body ?? Buffer.alloc(0), (err) => (err ? rej(err) : res())));
  }
  pack.finalize();
  await done;
  return gzipSync(Buffer.concat(chunks));
}

const pkgJson = (name: string, version: string) => ({ name: 'package/package.json', body: JSON.stringify({ name, version }) });

function publishBody(name: string, version: string, data: Buffer) {
  const file = `${name}-${version}.tgz`;
  return JSON.stringify({
    _id: name, name, 'dist-tags': { latest: version },
    versions: { [version]: { name, version, dist: { integrity: `sha512-${createHash('sha512').update(data).digest('base64')}`, shasum: createHash('sha1').update(data).digest('hex'), tarball: `http://x/${name}/-/${file}` } } },
    _attachments: { [file]: { content_type: 'application/octet-stream', data: data.toString('base64'), length: data.length } },
  });
}

const publish = (name: string, version: string, data: Buffer) =>
  fetch(`${srv.url}/npm-local/${name}`, { method: 'PUT', body: publishBody(name, version, data), headers: { 'content-type': 'application/json' } });

async function stored(): Promise<{ rows: string[]; blobs: string[] }> {
  const rows: string[] = [];
  for await (const f of srv.svc.meta.files.list('npm-local')) rows.push(`${f.path} ${f.digest}`);
  const blobs: string[] = [];
  for await (const b of srv.svc.blob.list()) blobs.push(b.digest);
  return { rows: rows.sort(), blobs: blobs.sort() };
}

describe('npm publish: tarballs that would unpack outside the package', () => {
  it('stores a clean tarball byte for byte', async () => {
    const data = await tgz([pkgJson('clean', '1.0.0'), { name: 'package/index.js', body: 'module.exports = 1;\n' }, { name: 'package/lib/self', type: 'symlink', linkname: '../index.js' }]);
    const res = await publish('clean', '1.0.0', data);
    expect(res.status).toBe(201);
    const got = Buffer.from(await (await fetch(`${srv.url}/npm-local/clean/-/clean-1.0.0.tgz`)).arrayBuffer());
    expect(got.equals(data)).toBe(true);
  });

  const cases: [string, Entry][] = [
    ['an absolute path', { name: '/etc/passwd', body: 'root:x:0:0' }],
    ['a leading ..', { name: '../x', body: 'x' }],
    ['.. past the root inside the path', { name: 'package/../../x', body: 'x' }],
    ['a backslash path', { name: 'package\\..\\..\\x', body: 'x' }],
    ['a symlink pointing outside', { name: 'package/link', type: 'symlink', linkname: '../../etc/passwd' }],
    ['an absolute symlink', { name: 'package/link', type: 'symlink', linkname: '/etc/passwd' }],
    ['a hard link outside', { name: 'package/hard', type: 'link', linkname: '../outside' }],
  ];
  it('publishes evil@1.0.0, clean, so the refusals below must leave its packument as it is', async () => {
    expect((await publish('evil', '1.0.0', await tgz([pkgJson('evil', '1.0.0')]))).status).toBe(201);
  });
  for (const [what, entry] of cases) {
    it(`refuses ${what} with 400 and stores nothing`, async () => {
      const doc = await (await fetch(`${srv.url}/npm-local/evil`)).text();
      const before = await stored();
      const res = await publish('evil', '2.0.0', await tgz([pkgJson('evil', '2.0.0'), entry]));
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: expect.stringMatching(/evil@2\.0\.0: .*(outside|points)/) });
      expect(await stored()).toEqual(before);
      expect(await (await fetch(`${srv.url}/npm-local/evil`)).text()).toBe(doc);
      expect((await fetch(`${srv.url}/npm-local/evil/-/evil-2.0.0.tgz`)).status).toBe(404);
    });
  }

  it('bounds what a gzip bomb unpacks to: 413, nothing stored', async () => {
    const bomb = await tgz([pkgJson('bomb', '1.0.0'), { name: 'package/zeros', body: Buffer.alloc(8 << 20) }]);
    expect(bomb.length).toBeLessThan(64 * 1024);
    const before = await stored();
    const res = await publish('bomb', '1.0.0', bomb);
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ error: expect.stringContaining('unpacks to more than 1048576 bytes') });
    expect(await stored()).toEqual(before);
  });

  it('refuses an attachment that is not a gzipped tarball', async () => {
    const res = await publish('notgz', '1.0.0', Buffer.from('just some bytes, not gzip'));
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'notgz@1.0.0: not a gzipped tar file' });
  });
});
