import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';
import { startUpstream, staticFiles, type FakeUpstream } from '../helpers/upstream.js';

// The corruption tests write into the local CAS directory; over ARTIFACTAPI_TEST_STACK=1 the blobs live in S3.
const ON_STACK = process.env.ARTIFACTAPI_TEST_STACK === '1';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let srv: TestServer | undefined;
let up: FakeUpstream | undefined;
const extra: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await srv?.close();
  await up?.close();
  for (const e of extra.splice(0)) await e.close();
  srv = undefined;
  up = undefined;
});

async function setup(handler: Parameters<typeof startUpstream>[0], repo: Record<string, unknown> = {}, flags: Record<string, unknown> = {}) {
  up = await startUpstream(handler);
  srv = await startServer(flags);
  await srv.addRepo({ name: 'rem', format: 'generic', kind: 'remote', upstream: `${up.url}/base/`, ...repo });
  return { up, srv };
}

/** GET through node:http, recording when the first body byte arrived; rejects if the response is cut short. */
function rawGet(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, any>; body: Buffer; firstByteAt: number; endAt: number }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      let firstByteAt = 0;
      res.on('data', (c: Buffer) => {
        if (!firstByteAt) firstByteAt = Date.now();
        chunks.push(c);
      });
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('aborted')));
      res.on('end', () => {
        if (!res.complete) return reject(new Error('incomplete'));
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), firstByteAt, endAt: Date.now() });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Number of cache rows for a repo. */
async function rows(s: TestServer, repo = 'rem'): Promise<number> {
  let n = 0;
  for await (const _ of s.svc.meta.files.list(repo)) n++;
  return n;
}

async function tmpFiles(s: TestServer): Promise<string[]> {
  return readdir(s.svc.blob.tempDir!).catch(() => []);
}

describe('generic remote: fetch, cache, stream', () => {
  it('a Range request on the first fetch gets 206 with just those bytes; the whole file is still cached', async () => {
    const body = randomBytes(3 * 1024 * 1024 + 17);
    let release!: () => void;
    const held = new Promise<void>((r) => { release = r; });
    await setup(async (req, res) => {
      if (req.url === '/base/other.bin') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) });
        return void res.end(body);
      }
      if (req.url === '/base/chunked.bin') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' }); // no Content-Length: size unknown
        return void res.end(body);
      }
      if (req.url !== '/base/big.bin') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) });
      res.write(body.subarray(0, 1024 * 1024));
      await held; // the rest arrives only when the test says so
      res.end(body.subarray(1024 * 1024));
    });
    const ranged = rawGet(`${srv!.url}/rem/big.bin`, { range: 'bytes=100-199' });
    let done = false;
    void ranged.then(() => { done = true; }, () => { done = true; });
    await sleep(300);
    // The range's bytes have arrived, but the fill has not finished and verified: not complete yet.
    expect(done).toBe(false);
    release();
    const r = await ranged;
    expect(r.status).toBe(206);
    expect(r.headers['content-range']).toBe(`bytes 100-199/${body.length}`);
    expect(r.headers['content-length']).toBe('100');
    expect(r.headers['x-artifact-source']).toBe('remote');
    expect(r.body.equals(body.subarray(100, 200))).toBe(true);

    const tail = await rawGet(`${srv!.url}/rem/big.bin`, { range: 'bytes=-10' });
    expect(tail.status).toBe(206);
    expect(tail.headers['x-artifact-source']).toBe('cache');
    expect(tail.body.equals(body.subarray(body.length - 10))).toBe(true);
    const whole = await fetch(`${srv!.url}/rem/big.bin`);
    expect(sha(Buffer.from(await whole.arrayBuffer()))).toBe(sha(body));
    expect(up!.count('/base/big.bin')).toBe(1);

    // Unknown length on a first fetch: the Range is ignored and the whole body comes with 200.
    const unknown = await rawGet(`${srv!.url}/rem/chunked.bin`, { range: 'bytes=0-9' });
    expect(unknown.status).toBe(200);
    expect(unknown.headers['x-artifact-source']).toBe('remote');
    expect(unknown.body.equals(body)).toBe(true);
    // Out of range on a first fetch: 416, and the fill still lands.
    const outside = await rawGet(`${srv!.url}/rem/other.bin`, { range: `bytes=${body.length + 5}-` });
    expect(outside.status).toBe(416);
    expect(outside.headers['content-range']).toBe(`bytes */${body.length}`);
    await sleep(200);
    const after = await fetch(`${srv!.url}/rem/other.bin`);
    expect(after.headers.get('x-artifact-source')).toBe('cache');
    expect(sha(Buffer.from(await after.arrayBuffer()))).toBe(sha(body));
  });

  it('answers remote first, then cache, with the same bytes', async () => {
    const body = randomBytes(100_000);
    await setup(staticFiles({ '/base/dir/a.bin': body }));
    const first = await fetch(`${srv!.url}/rem/dir/a.bin`);
    expect(first.status).toBe(200);
    expect(first.headers.get('x-artifact-source')).toBe('remote');
    expect(first.headers.get('x-artifact-repo')).toBe('rem');
    expect(Buffer.from(await first.arrayBuffer()).equals(body)).toBe(true);
    const second = await fetch(`${srv!.url}/rem/dir/a.bin`);
    expect(second.headers.get('x-artifact-source')).toBe('cache');
    expect(second.headers.get('etag')).toBe(`"${sha(body)}"`);
    expect(second.headers.get('content-length')).toBe(String(body.length));
    expect(Buffer.from(await second.arrayBuffer()).equals(body)).toBe(true);
    expect(up!.count('/base/dir/a.bin')).toBe(1);
    // Cached content survives the upstream going away.
    await up!.close();
    up = undefined;
    const third = await fetch(`${srv!.url}/rem/dir/a.bin`);
    expect(third.headers.get('x-artifact-source')).toBe('cache');
    expect(Buffer.from(await third.arrayBuffer()).equals(body)).toBe(true);
  });

  it('streams to the client while the upstream is still sending', async () => {
    const part = randomBytes(64 * 1024);
    let upstreamDoneAt = 0;
    await setup(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(part.length * 5) });
      for (let i = 0; i < 5; i++) {
        await sleep(200);
        if (i === 4) upstreamDoneAt = Date.now();
        res.write(part);
      }
      res.end();
    });
    const r = await rawGet(`${srv!.url}/rem/slow.bin`);
    expect(r.status).toBe(200);
    expect(r.headers['x-artifact-source']).toBe('remote');
    expect(r.body.length).toBe(part.length * 5);
    expect(upstreamDoneAt).toBeGreaterThan(0);
    // The first bytes arrived long before the upstream finished (it takes ~1 s).
    expect(upstreamDoneAt - r.firstByteAt).toBeGreaterThan(600);
    const again = await fetch(`${srv!.url}/rem/slow.bin`);
    expect(again.headers.get('x-artifact-source')).toBe('cache');
    expect(up!.count()).toBe(1);
  });

  it('a fill outlives the client that started it: the file is cached once the upstream finishes', async () => {
    const part = randomBytes(256 * 1024);
    let finished = false;
    await setup(async (_req, res) => {
      res.writeHead(200, { 'content-length': String(part.length * 4) });
      for (let i = 0; i < 4; i++) {
        res.write(part);
        await sleep(150);
      }
      res.end(() => { finished = true; });
    });
    await new Promise<void>((resolve) => {
      const req = request(`${srv!.url}/rem/left.bin`, (res) => {
        res.once('data', () => { req.destroy(); resolve(); });
      });
      req.on('error', () => {});
      req.end();
    });
    while (!finished) await sleep(50);
    await sleep(200);
    const r = await rawGet(`${srv!.url}/rem/left.bin`);
    expect(r.headers['x-artifact-source']).toBe('cache');
    expect(r.body.length).toBe(part.length * 4);
    expect(up!.count()).toBe(1);
  });

  it('HEAD of an uncached file answers with the upstream length and still caches it', async () => {
    const body = randomBytes(70_000);
    await setup(staticFiles({ '/base/h.bin': body }));
    const h = await fetch(`${srv!.url}/rem/h.bin`, { method: 'HEAD' });
    expect(h.status).toBe(200);
    expect(h.headers.get('content-length')).toBe(String(body.length));
    await sleep(200);
    const g = await fetch(`${srv!.url}/rem/h.bin`);
    expect(g.headers.get('x-artifact-source')).toBe('cache');
    expect(Buffer.from(await g.arrayBuffer()).equals(body)).toBe(true);
    expect(up!.count()).toBe(1);
  });

  it('50 concurrent misses make one upstream request and get 50 identical bodies', async () => {
    const body = randomBytes(3 * 1024 * 1024 + 17);
    await setup(async (req, res) => {
      res.writeHead(200, { 'content-length': String(body.length) });
      // Send in pieces so that the requests overlap the download.
      for (let off = 0; off < body.length; off += 512 * 1024) {
        res.write(body.subarray(off, off + 512 * 1024));
        await sleep(20);
      }
      res.end();
    });
    const results = await Promise.all(Array.from({ length: 50 }, () => rawGet(`${srv!.url}/rem/pkg/big.bin`)));
    expect(up!.count()).toBe(1);
    const want = sha(body);
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(sha(r.body)).toBe(want);
    }
    expect(results.filter((r) => r.headers['x-artifact-source'] === 'remote').length).toBeGreaterThan(0);
  });

  it('upstream closing mid-body: the client gets an error, nothing is cached, the next request refetches', async () => {
    const body = randomBytes(2 * 1024 * 1024);
    let cut = true;
    await setup(async (_req, res) => {
      res.writeHead(200, { 'content-length': String(body.length) });
      if (cut) {
        res.write(body.subarray(0, 1024 * 1024));
        await sleep(50);
        res.socket!.destroy();
        return;
      }
      res.end(body);
    });
    await expect(rawGet(`${srv!.url}/rem/cut.bin`)).rejects.toThrow();
    await sleep(100);
    expect(await rows(srv!)).toBe(0);
    expect(await tmpFiles(srv!)).toEqual([]);
    cut = false;
    const r = await rawGet(`${srv!.url}/rem/cut.bin`);
    expect(r.status).toBe(200);
    expect(r.headers['x-artifact-source']).toBe('remote');
    expect(r.body.equals(body)).toBe(true);
    expect(up!.count()).toBe(2);
  });

  it('upstream closing a chunked body mid-way (no Content-Length) is an error too, not a short 200', async () => {
    const body = randomBytes(1024 * 1024);
    await setup(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(body.subarray(0, 300_000));
      await sleep(50);
      res.socket!.destroy();
    });
    await expect(rawGet(`${srv!.url}/rem/chunked.bin`)).rejects.toThrow();
    await sleep(100);
    expect(await rows(srv!)).toBe(0);
  });
});

describe('generic remote: upstream failures', () => {
  it('upstream 500 -> 502, nothing cached', async () => {
    await setup((_req, res) => void res.writeHead(500).end('boom'));
    const r = await fetch(`${srv!.url}/rem/x.bin`);
    expect(r.status).toBe(502);
    expect((await r.json()).error.code).toBe('UPSTREAM_FAILED');
    expect(await rows(srv!)).toBe(0);
  });

  it('upstream unreachable -> 502, nothing cached', async () => {
    // A port that was just free: nothing listens there.
    const s: Server = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as { port: number }).port;
    await new Promise<void>((r) => s.close(() => r()));
    srv = await startServer();
    await srv.addRepo({ name: 'rem', format: 'generic', kind: 'remote', upstream: `http://127.0.0.1:${port}/` });
    const r = await fetch(`${srv.url}/rem/x.bin`);
    expect(r.status).toBe(502);
    expect(await rows(srv)).toBe(0);
  });

  it('hanging upstream with nothing cached -> 504 within upstream_timeout', async () => {
    await setup(() => { /* never answers */ }, { upstream_timeout: '400ms' });
    const t0 = Date.now();
    const r = await fetch(`${srv!.url}/rem/x.bin`);
    const ms = Date.now() - t0;
    expect(r.status).toBe(504);
    expect(ms).toBeLessThan(1500);
    expect(await rows(srv!)).toBe(0);
  });

  it('upstream 404 -> 404, remembered for negative_ttl', async () => {
    await setup(staticFiles({}), { negative_ttl: '400ms' });
    expect((await fetch(`${srv!.url}/rem/missing.bin`)).status).toBe(404);
    expect((await fetch(`${srv!.url}/rem/missing.bin`)).status).toBe(404);
    expect(up!.count()).toBe(1);
    await sleep(500);
    expect((await fetch(`${srv!.url}/rem/missing.bin`)).status).toBe(404);
    expect(up!.count()).toBe(2);
    expect(await rows(srv!)).toBe(0);
  });

  for (const mode of ['500', 'down', 'hang', 'stall mid-body'] as const) {
    it(`stale mutable file past its TTL is served when the upstream fails (${mode}), fast, with X-Artifact-Stale and Age`, async () => {
      const doc = '{"v":1}';
      await setup(staticFiles({ '/base/meta/index.json': doc }, 'application/json'), { metadata_ttl: '300ms', upstream_timeout: '500ms' });
      const first = await fetch(`${srv!.url}/rem/meta/index.json`);
      expect(first.headers.get('x-artifact-source')).toBe('remote');
      expect(await first.text()).toBe(doc);
      await sleep(1100);
      if (mode === '500') up!.handle((_req, res) => void res.writeHead(500).end());
      if (mode === 'hang') up!.handle(() => {});
      if (mode === 'stall mid-body') {
        up!.handle((_req, res) => {
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
          res.write('{"v":'); // and nothing more
        });
      }
      if (mode === 'down') { await up!.close(); up = undefined; }
      const t0 = Date.now();
      const r = await fetch(`${srv!.url}/rem/meta/index.json`);
      const ms = Date.now() - t0;
      expect(r.status).toBe(200);
      expect(await r.text()).toBe(doc);
      expect(r.headers.get('x-artifact-stale')).toBe('true');
      expect(Number(r.headers.get('age'))).toBeGreaterThanOrEqual(1);
      expect(r.headers.get('x-artifact-source')).toBe('cache');
      expect(ms).toBeLessThan(1200); // bounded by upstream_timeout (500ms), never the idle/fill timeouts
    });
  }
});

describe('generic remote: metadata TTL and revalidation', () => {
  it('revalidates with If-None-Match/If-Modified-Since after metadata_ttl: 304 keeps the blob, 200 replaces it', async () => {
    let body = '{"version":1}';
    let etag = '"e1"';
    const lastModified = new Date(Date.now() - 3600_000).toUTCString();
    const seen: Record<string, string | undefined>[] = [];
    await setup((req, res) => {
      seen.push({ inm: req.headers['if-none-match'] as string | undefined, ims: req.headers['if-modified-since'] as string | undefined });
      if (req.headers['if-none-match'] === etag) return void res.writeHead(304, { etag }).end();
      res.writeHead(200, { 'content-type': 'application/json', etag, 'last-modified': lastModified }).end(body);
    }, { metadata_ttl: '300ms' });
    const url = `${srv!.url}/rem/channel/latest.json`;
    expect(await (await fetch(url)).text()).toBe(body);
    // Within the TTL: no upstream request.
    const cached = await fetch(url);
    expect(cached.headers.get('x-artifact-source')).toBe('cache');
    await cached.arrayBuffer();
    expect(seen.length).toBe(1);
    expect(seen[0].inm).toBeUndefined();

    await sleep(400);
    const rv = await fetch(url);
    expect(await rv.text()).toBe(body);
    expect(rv.headers.get('x-artifact-source')).toBe('cache');
    expect(seen.length).toBe(2);
    expect(seen[1]).toEqual({ inm: '"e1"', ims: lastModified });
    // 304 refreshed the TTL.
    await (await fetch(url)).arrayBuffer();
    expect(seen.length).toBe(2);

    await sleep(400);
    body = '{"version":2}';
    etag = '"e2"';
    const changed = await fetch(url);
    expect(await changed.text()).toBe(body);
    expect(changed.headers.get('x-artifact-source')).toBe('remote');
    expect(seen.length).toBe(3);
    const after = await fetch(url);
    expect(after.headers.get('x-artifact-source')).toBe('cache');
    expect(await after.text()).toBe(body);
    expect(after.headers.get('etag')).toBe(`"${sha(Buffer.from(body))}"`);
  });

  it('immutable files are never revalidated', async () => {
    const body = randomBytes(1000);
    await setup(staticFiles({ '/base/v1/tool.tar.gz': body }), { metadata_ttl: '100ms' });
    await (await fetch(`${srv!.url}/rem/v1/tool.tar.gz`)).arrayBuffer();
    await sleep(300);
    const r = await fetch(`${srv!.url}/rem/v1/tool.tar.gz`);
    expect(r.headers.get('x-artifact-source')).toBe('cache');
    expect(Buffer.from(await r.arrayBuffer()).equals(body)).toBe(true);
    expect(up!.count()).toBe(1);
  });

  it('the repo option `mutable` picks which paths have a TTL', async () => {
    let n = 0;
    await setup((_req, res) => void res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(`v${++n}`), { metadata_ttl: '100ms', mutable: ['**/nightly/**'] });
    expect(await (await fetch(`${srv!.url}/rem/nightly/tool.bin`)).text()).toBe('v1');
    await sleep(200);
    expect(await (await fetch(`${srv!.url}/rem/nightly/tool.bin`)).text()).toBe('v2');
  });
});

describe('generic remote: upstream hygiene', () => {
  it('an HTML error page where an artifact was expected is not cached', async () => {
    let html = true;
    const body = randomBytes(500);
    await setup((_req, res) => {
      if (html) return void res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<html><body>Login required</body></html>');
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body);
    });
    const r = await fetch(`${srv!.url}/rem/dist/app.tar.gz`);
    expect(r.status).toBe(502);
    expect(await rows(srv!)).toBe(0);
    html = false;
    const ok = await fetch(`${srv!.url}/rem/dist/app.tar.gz`);
    expect(ok.status).toBe(200);
    expect(Buffer.from(await ok.arrayBuffer()).equals(body)).toBe(true);
  });

  for (const how of ['userinfo', 'options'] as const) {
    it(`credentials (${how}) go to the upstream and never to another host after a redirect`, async () => {
      const other = await startUpstream((req, res) => void res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(`auth=${req.headers.authorization ?? 'none'}`));
      extra.push(other);
      const authSeen: (string | undefined)[] = [];
      up = await startUpstream((req, res) => {
        authSeen.push(req.headers.authorization);
        if (req.url?.includes('moved')) return void res.writeHead(302, { location: `${other.url}/elsewhere.bin` }).end();
        if (req.url?.includes('same')) return void res.writeHead(302, { location: '/base/direct.bin' }).end();
        res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(`auth=${req.headers.authorization ?? 'none'}`);
      });
      srv = await startServer();
      const base = new URL(`${up.url}/base/`);
      if (how === 'userinfo') {
        base.username = 'alice';
        base.password = 's3cret';
        await srv.addRepo({ name: 'rem', format: 'generic', kind: 'remote', upstream: base.toString() });
      } else {
        await srv.addRepo({ name: 'rem', format: 'generic', kind: 'remote', upstream: base.toString(), username: 'alice', password: 's3cret' });
      }
      const basic = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;
      expect(await (await fetch(`${srv.url}/rem/direct.bin`)).text()).toBe(`auth=${basic}`);
      expect(await (await fetch(`${srv.url}/rem/same.bin`)).text()).toBe(`auth=${basic}`);
      expect(await (await fetch(`${srv.url}/rem/moved.bin`)).text()).toBe('auth=none');
      expect(other.count()).toBe(1);
      expect(authSeen.every((a) => a === basic)).toBe(true);
      // The password is never shown.
      const shown = await (await fetch(`${srv.url}/api/v1/repositories/rem`)).text();
      expect(shown).not.toContain('s3cret');
    });
  }

  it('metadata bodies above limits.metadata_body are refused with 413', async () => {
    const { resolveDoc } = await import('../../src/repos/resolve.js');
    const big = JSON.stringify({ pad: 'x'.repeat(20_000) });
    await setup(staticFiles({ '/base/big.json': big, '/base/small.json': '{"a":1}' }, 'application/json'), {}, { 'limits.metadata_body': '10KiB' });
    const repo = (await srv!.svc.repos.get('rem'))!;
    const src = (path: string) => ({
      ref: { path }, local: async () => null, parseUpstream: (_r: unknown, b: Buffer) => JSON.parse(b.toString()), merge: () => ({}),
    });
    expect((await resolveDoc(srv!.svc, repo, src('small.json'))).doc).toEqual({ a: 1 });
    await expect(resolveDoc(srv!.svc, repo, src('big.json'))).rejects.toMatchObject({ code: 'TOO_LARGE', status: 413 });
    // JSON bodies sent to the server are capped too.
    const r = await fetch(`${srv!.url}/api/v1/repositories`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
    expect(r.status).toBe(413);
  });
});

describe.skipIf(ON_STACK)('generic remote: corrupted cache', () => {
  for (const size of [10_000, 5 * 1024 * 1024 + 3]) {
    it(`a corrupted cached blob (${size} bytes) is never served whole, is quarantined and refetched`, async () => {
      const body = randomBytes(size);
      await setup(staticFiles({ '/base/c.bin': body }));
      await (await fetch(`${srv!.url}/rem/c.bin`)).arrayBuffer();
      const { writeFileSync, existsSync } = await import('node:fs');
      const path = srv!.svc.blob.localPath!(`sha256:${sha(body)}`);
      const bad = Buffer.from(body);
      bad[bad.length - 1] ^= 0xff;
      writeFileSync(path, bad);
      let got: Buffer | undefined;
      try {
        const r = await rawGet(`${srv!.url}/rem/c.bin`);
        got = r.status === 200 ? r.body : undefined;
      } catch { /* the transfer was aborted: what we want */ }
      expect(got === undefined || !got.equals(bad)).toBe(true);
      expect(got?.length === size).toBe(false);
      await sleep(50);
      expect(existsSync(path)).toBe(false);
      expect((await readdir(join(srv!.dataDir, 'quarantine'))).length).toBe(1);
      const again = await rawGet(`${srv!.url}/rem/c.bin`);
      expect(again.headers['x-artifact-source']).toBe('remote');
      expect(again.body.equals(body)).toBe(true);
      expect(up!.count()).toBe(2);
    });
  }
});
