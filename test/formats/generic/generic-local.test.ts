import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('generic local repository', () => {
  let srv: TestServer;
  beforeEach(async () => {
    srv = await startServer();
    await srv.addRepo({ name: 'files', format: 'generic', kind: 'local' });
  });
  afterEach(async () => srv.close());

  it('stores a PUT and serves it with the contract headers', async () => {
    const body = randomBytes(300_000);
    const put = await fetch(`${srv.url}/files/a/b/c.bin`, { method: 'PUT', body });
    expect(put.status).toBe(201);
    expect((await put.json()).sha256).toBe(sha(body));

    const get = await fetch(`${srv.url}/files/a/b/c.bin`);
    expect(get.status).toBe(200);
    expect(get.headers.get('x-artifact-source')).toBe('local');
    expect(get.headers.get('x-artifact-repo')).toBe('files');
    expect(get.headers.get('etag')).toBe(`"${sha(body)}"`);
    expect(get.headers.get('content-length')).toBe(String(body.length));
    expect(get.headers.get('last-modified')).toBeTruthy();
    expect(Buffer.from(await get.arrayBuffer()).equals(body)).toBe(true);

    const head = await fetch(`${srv.url}/files/a/b/c.bin`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(body.length));

    const cond = await fetch(`${srv.url}/files/a/b/c.bin`, { headers: { 'if-none-match': `"${sha(body)}"` } });
    expect(cond.status).toBe(304);
  });

  it('answers Range requests with 206 and 416', async () => {
    const body = randomBytes(2_000_000);
    await fetch(`${srv.url}/files/big.bin`, { method: 'PUT', body });
    const r = await fetch(`${srv.url}/files/big.bin`, { headers: { range: 'bytes=1000-1999' } });
    expect(r.status).toBe(206);
    expect(r.headers.get('content-range')).toBe(`bytes 1000-1999/${body.length}`);
    expect(Buffer.from(await r.arrayBuffer()).equals(body.subarray(1000, 2000))).toBe(true);
    const suffix = await fetch(`${srv.url}/files/big.bin`, { headers: { range: 'bytes=-10' } });
    expect(Buffer.from(await suffix.arrayBuffer()).equals(body.subarray(body.length - 10))).toBe(true);
    const bad = await fetch(`${srv.url}/files/big.bin`, { headers: { range: `bytes=${body.length}-` } });
    expect(bad.status).toBe(416);
  });

  it('refuses a wrong X-Checksum-Sha256 and keeps nothing', async () => {
    const body = randomBytes(1000);
    const put = await fetch(`${srv.url}/files/x.bin`, { method: 'PUT', body, headers: { 'x-checksum-sha256': sha(Buffer.from('other')) } });
    expect(put.status).toBe(400);
    expect((await put.json()).error.code).toBe('DIGEST_INVALID');
    expect((await fetch(`${srv.url}/files/x.bin`)).status).toBe(404);
    expect(await srv.svc.blob.stat(`sha256:${sha(body)}`)).toBeNull();
  });

  it('stores the same bytes under two paths once', async () => {
    const body = randomBytes(5000);
    await fetch(`${srv.url}/files/one`, { method: 'PUT', body });
    await fetch(`${srv.url}/files/two/copy`, { method: 'PUT', body });
    const blobs = [];
    for await (const b of srv.svc.blob.list()) blobs.push(b);
    expect(blobs.map((b) => b.digest)).toEqual([`sha256:${sha(body)}`]);
  });

  it('refuses path traversal in every encoding', async () => {
    const { request } = await import('node:http');
    const raw = (path: string) => new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: srv.port, path, method: 'GET' }, (res) => { res.resume(); resolve(res.statusCode!); });
      req.on('error', reject);
      req.end();
    });
    for (const p of ['/files/../etc/passwd', '/files/a/../../x', '/files/%2e%2e/x', '/files/%252e%252e/x', '/files/a%2f..%2f..%2fx',
      '/files/a\\..\\x', '/files/a%5c..%5cx', '/files/%00x', '/files//etc/passwd', '/files/./x']) {
      const status = await raw(p);
      expect([400, 404], p).toContain(status);
    }
    expect(await raw('/files/%2e%2e/x')).toBe(400);
    // A malformed escape gets the contract's error body, not the framework's.
    const bad = await fetch(`${srv.url}/files/%E0%A4%A`);
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.code).toBe('BAD_REQUEST');
  });
});
