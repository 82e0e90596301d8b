import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/lib/errors.js';
import { runGc } from '../../src/maintenance/gc.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { startUpstream, staticFiles, type FakeUpstream } from '../helpers/upstream.js';
import { cleanupScratch, ensureDist, spawnServe } from '../cli/bin.js';

let srv: TestServer;
let up: FakeUpstream;

/** The value of one sample line `name{labels} value`, or undefined. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? '').split(',').filter(Boolean);
    if (want.every((w) => have.includes(w))) return Number(m[3]);
  }
  return undefined;
}

beforeAll(async () => {
  ensureDist();
  up = await startUpstream(staticFiles({ '/lib/x.bin': Buffer.alloc(1000, 7) }));
  srv = await startServer();
  await srv.addRepo({ name: 'm-local', format: 'generic', kind: 'local' });
  await srv.addRepo({ name: 'm-remote', format: 'generic', kind: 'remote', upstream: up.url });
});
afterAll(async () => {
  await srv.close();
  await up.close();
  cleanupScratch();
});

describe('GET /metrics', () => {
  it('counts requests by repo/format/method/status/source, bytes both ways, cache hits and misses, upstream requests and auth refusals', async () => {
    expect((await fetch(`${srv.url}/m-local/a`, { method: 'PUT', body: 'hello' })).status).toBe(201);
    expect((await fetch(`${srv.url}/m-local/a`)).status).toBe(200);
    for (const source of ['remote', 'cache']) {
      const res = await fetch(`${srv.url}/m-remote/lib/x.bin`);
      expect(res.headers.get('x-artifact-source')).toBe(source);
      expect((await res.arrayBuffer()).byteLength).toBe(1000);
    }
    const missing = await fetch(`${srv.url}/m-remote/lib/none.bin`);
    expect(missing.status).toBe(404);
    const missingBytes = Buffer.byteLength(await missing.text());
    srv.svc.pipeline.before.push((op) => {
      if (op.subject === 'secret') throw new AppError('UNAUTHORIZED', 'who are you');
    });
    expect((await fetch(`${srv.url}/m-local/secret`)).status).toBe(401);

    const res = await fetch(`${srv.url}/metrics`, { headers: { authorization: srv.adminAuth } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    const req = (l: Record<string, string>) => sample(text, 'artifactapi_http_requests_total', l);
    expect(req({ repo: 'm-local', format: 'generic', method: 'PUT', status: '201', source: '' })).toBe(1);
    expect(req({ repo: 'm-local', format: 'generic', method: 'GET', status: '200', source: 'local' })).toBe(1);
    expect(req({ repo: 'm-remote', method: 'GET', status: '200', source: 'remote' })).toBe(1);
    expect(req({ repo: 'm-remote', method: 'GET', status: '200', source: 'cache' })).toBe(1);
    expect(sample(text, 'artifactapi_http_received_bytes_total', { repo: 'm-local' })).toBe(5);
    expect(sample(text, 'artifactapi_http_sent_bytes_total', { repo: 'm-remote' })).toBe(2000 + missingBytes);
    expect(sample(text, 'artifactapi_cache_requests_total', { repo: 'm-remote', result: 'hit' })).toBe(1);
    expect(sample(text, 'artifactapi_cache_requests_total', { repo: 'm-remote', result: 'miss' })).toBe(1);
    expect(sample(text, 'artifactapi_upstream_requests_total', { repo: 'm-remote', status: '200' })).toBe(1);
    expect(sample(text, 'artifactapi_upstream_requests_total', { repo: 'm-remote', status: '404' })).toBe(1);
    expect(sample(text, 'artifactapi_upstream_response_seconds_count', { repo: 'm-remote' })).toBe(2);
    expect(sample(text, 'artifactapi_auth_failures_total', { format: 'generic', status: '401' })).toBe(1);
    expect(sample(text, 'artifactapi_http_request_duration_seconds_count', { format: 'generic', method: 'GET' })).toBe(5);
    expect(sample(text, 'artifactapi_gc_runs', {})).toBe(0);
  });

  it('N concurrent cold GETs of one file through a remote: one upstream request, N-1 single-flight joins', async () => {
    const body = Buffer.alloc(4000, 3);
    const slow = await startUpstream(async (req, res) => {
      // Held back, so that every request arrives while the first fetch is still running.
      await new Promise((r) => setTimeout(r, 500));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) }).end(body);
    });
    try {
      await srv.addRepo({ name: 'm-join', format: 'generic', kind: 'remote', upstream: slow.url });
      const n = 6;
      const got = await Promise.all(Array.from({ length: n }, async () => {
        const res = await fetch(`${srv.url}/m-join/big.bin`);
        return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
      }));
      expect(got.map((g) => g.status)).toEqual(Array(n).fill(200));
      for (const g of got) expect(g.bytes.equals(body)).toBe(true);
      expect(slow.count('/big.bin')).toBe(1);
      const text = await (await fetch(`${srv.url}/metrics`, { headers: { authorization: srv.adminAuth } })).text();
      expect(sample(text, 'artifactapi_singleflight_joins_total', { repo: 'm-join' })).toBe(n - 1);
      expect(sample(text, 'artifactapi_upstream_requests_total', { repo: 'm-join', status: '200' })).toBe(1);
      expect(sample(text, 'artifactapi_cache_requests_total', { repo: 'm-join', result: 'miss' })).toBe(n);
    } finally {
      await slow.close();
    }
  });

  it('counts upstream failures without a response, and gc runs with the bytes they freed', async () => {
    const gone = await startUpstream(() => {});
    const url = gone.url;
    await gone.close();
    await srv.addRepo({ name: 'm-down', format: 'generic', kind: 'remote', upstream: url });
    const failed = await fetch(`${srv.url}/m-down/x.bin`);
    expect(failed.status).toBe(502);

    expect((await fetch(`${srv.url}/m-local/doomed`, { method: 'PUT', body: 'seven b' })).status).toBe(201);
    expect((await fetch(`${srv.url}/m-local/doomed`, { method: 'DELETE' })).status).toBe(204);
    await runGc(srv.svc, { now: Date.now() + 2 * srv.config.gc.grace });

    const text = await (await fetch(`${srv.url}/metrics`, { headers: { authorization: srv.adminAuth } })).text();
    expect(sample(text, 'artifactapi_upstream_errors_total', { repo: 'm-down' })).toBe(1);
    expect(sample(text, 'artifactapi_gc_runs', {})).toBe(1);
    expect(sample(text, 'artifactapi_gc_freed_bytes', {})).toBe(7);
  });

  it('is an admin operation (the auth hook decides), unless metrics.public', async () => {
    const seen: string[] = [];
    const hook = (op: { action: string; subject?: string }) => {
      if (op.subject === 'metrics') seen.push(op.action);
    };
    srv.svc.pipeline.before.push(hook);
    // the auth hook refuses an anonymous scrape before any later hook sees it
    expect((await fetch(`${srv.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${srv.url}/metrics`, { headers: { authorization: srv.adminAuth } })).status).toBe(200);
    const pub = await startServer({ 'metrics.public': true });
    try {
      pub.svc.pipeline.before.push(hook);
      expect((await fetch(`${pub.url}/metrics`)).status).toBe(200);
    } finally {
      await pub.close();
    }
    expect(seen).toEqual(['admin', 'read']);
  });
});

describe('under the supervisor', () => {
  it('sums every worker: requests spread over two workers all show, whichever worker answers the scrape', async () => {
    const serve = await spawnServe(['--workers', '2']);
    try {
      const end = Date.now() + 20_000;
      while (new Set(serve.logs().filter((l) => l.msg === 'worker listening').map((l) => l.pid)).size < 2) {
        if (Date.now() > end) throw new Error('two workers did not start');
        await new Promise((r) => setTimeout(r, 50));
      }
      // New connections each: the primary hands them to the workers in turn.
      for (let i = 0; i < 10; i++) await (await fetch(`${serve.url}/health`, { headers: { connection: 'close' } })).text();
      // Each worker counted only its share (log lines reach stdout within about a second).
      const servedBy = () => new Set(serve.logs().filter((l) => l.msg === 'request' && l.url === '/health').map((l) => l.pid));
      for (let t = Date.now(); servedBy().size < 2 && Date.now() - t < 3000;) await new Promise((r) => setTimeout(r, 100));
      expect(servedBy().size).toBe(2);
      for (let i = 0; i < 3; i++) {
        const text = await (await fetch(`${serve.url}/metrics`, { headers: { connection: 'close', authorization: `Bearer ${serve.adminToken}` } })).text();
        expect(sample(text, 'artifactapi_http_requests_total', { method: 'GET', status: '200' })).toBeGreaterThanOrEqual(10);
      }
    } finally {
      await serve.stop('SIGTERM');
    }
  });
});
