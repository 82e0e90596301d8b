import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { get, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';
import { startUpstream, type FakeUpstream } from '../helpers/upstream.js';
import { cleanupScratch, ensureDist, runCli, spawnServe, type ServeProcess } from '../cli/bin.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `pred` holds (log lines are written asynchronously). */
async function until(pred: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(25);
  }
}

describe('GET /health', () => {
  describe('in-process server', () => {
    let srv: TestServer;
    afterEach(async () => {
      await srv?.close().catch(() => undefined); // the metadata store may already be closed by the test
    });

    it('200 {"status":"ok"} while the stores answer, 503 once the metadata store is closed under it', async () => {
      srv = await startServer();
      const ok = await fetch(`${srv.url}/health`);
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ status: 'ok' });
      // A real failure of the SQLite store: its connection is closed, every query now throws.
      await srv.svc.meta.close();
      await expect(srv.svc.meta.ping()).rejects.toThrow();
      const down = await fetch(`${srv.url}/health`);
      expect(down.status).toBe(503);
      expect(await down.json()).toEqual({ status: 'unavailable' });
    });
  });

  describe('spawned `artifactapi serve`', () => {
    let srv: ServeProcess;
    beforeAll(() => ensureDist());
    afterAll(async () => {
      await srv?.stop();
      cleanupScratch();
    });

    it('200, then 503 while the CAS directory is replaced by a file, then 200 again once it is back', async () => {
      srv = await spawnServe();
      const first = await fetch(`${srv.url}/health`);
      expect(first.status).toBe(200);
      expect(await first.json()).toEqual({ status: 'ok' });
      // Root ignores permission bits, so break the blob store for real: its root is no longer a directory
      // (every stat under it fails with ENOTDIR instead of "not found").
      const cas = join(srv.dataDir, 'cas');
      renameSync(cas, `${cas}.away`);
      writeFileSync(cas, 'not a directory');
      try {
        const down = await fetch(`${srv.url}/health`);
        expect(down.status).toBe(503);
        expect(await down.json()).toEqual({ status: 'unavailable' });
        await until(() => srv.logs().some((l) => l.msg === 'health check failed' && l.level === 50));
      } finally {
        rmSync(cas);
        renameSync(`${cas}.away`, cas);
      }
      expect((await fetch(`${srv.url}/health`)).status).toBe(200);
    });
  });
});

describe('SIGTERM to a spawned serve', () => {
  let up: FakeUpstream;
  const body = Buffer.alloc(2 * 1024 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 11)) & 0xff;
  beforeAll(async () => {
    ensureDist();
    // A slow upstream: 2 MiB in 16 pieces over ~1.6 s.
    up = await startUpstream(async (req, res) => {
      if (req.url !== '/slow.bin') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) });
      const piece = body.length / 16;
      for (let i = 0; i < 16; i++) {
        res.write(body.subarray(i * piece, (i + 1) * piece));
        await sleep(100);
      }
      res.end();
    });
  });
  afterAll(async () => {
    await up?.close();
    cleanupScratch();
  });

  it('lets an in-flight slow download complete byte-equal, refuses new connections, then exits 0', async () => {
    const srv = await spawnServe();
    try {
      const add = await runCli(['repo', 'add', 'slow', '--format', 'generic', '--kind', 'remote', '--upstream', `${up.url}/`, '--url', srv.url]);
      expect(add.code, add.stderr).toBe(0);

      const res = await new Promise<IncomingMessage>((resolve, reject) => get(`${srv.url}/slow/slow.bin`, { agent: false }, resolve).on('error', reject));
      expect(res.statusCode).toBe(200);
      const chunks: Buffer[] = [];
      let received = 0;
      const done = new Promise<{ at: number; aborted: boolean }>((resolve) => {
        res.on('data', (c: Buffer) => {
          chunks.push(c);
          received += c.length;
        });
        res.on('end', () => resolve({ at: Date.now(), aborted: !res.complete }));
        res.on('error', () => resolve({ at: Date.now(), aborted: true }));
      });
      await until(() => received > 0);
      expect(received).toBeLessThan(body.length); // the download is really in flight

      let exitedAt = 0;
      const exited = srv.exited.then((code) => {
        exitedAt = Date.now();
        return code;
      });
      srv.child.kill('SIGTERM');
      await sleep(300);
      expect(srv.child.exitCode).toBeNull(); // still serving the download
      // new connections are refused while it drains
      const refused = await fetch(`${srv.url}/health`).then((r) => `status ${r.status}`, (e: Error & { cause?: { code?: string } }) => e.cause?.code ?? e.message);
      expect(refused).toBe('ECONNREFUSED');

      const end = await done;
      expect(end.aborted).toBe(false);
      expect(Buffer.concat(chunks).equals(body)).toBe(true);
      expect(await exited).toBe(0);
      expect(exitedAt).toBeGreaterThanOrEqual(end.at);
      await until(() => srv.logs().some((l) => l.msg === 'shutting down' && l.signal === 'SIGTERM'));
      // the download itself was logged before the exit
      expect(srv.logs().some((l) => l.msg === 'request' && l.url === '/slow/slow.bin' && l.status === 200)).toBe(true);
    } finally {
      await srv.stop('SIGKILL');
    }
  });

  it('exits 0 at once when idle', async () => {
    const srv = await spawnServe();
    expect((await fetch(`${srv.url}/health`)).status).toBe(200); // leaves a keep-alive connection open
    const t0 = Date.now();
    expect(await srv.stop('SIGTERM')).toBe(0);
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});

describe('request logs of a spawned serve', () => {
  it('a quiet server writes its lines within about a second (stdout is buffered, but flushed periodically)', async () => {
    ensureDist();
    const quiet = await spawnServe();
    try {
      await fetch(`${quiet.url}/no-such-repo/x`).then((r) => r.arrayBuffer());
      const t0 = Date.now();
      await until(() => quiet.logs().some((l) => l.msg === 'request' && l.url === '/no-such-repo/x'), 3000);
      expect(Date.now() - t0).toBeLessThan(2500);
      expect(quiet.child.exitCode).toBeNull(); // still running: not the exit flush
    } finally {
      await quiet.stop();
    }
  });


  let srv: ServeProcess;
  let up: FakeUpstream;
  beforeAll(async () => {
    ensureDist();
    up = await startUpstream((req, res) => {
      if (req.url === '/pkg/a.tar.gz') return void res.writeHead(200, { 'content-length': '5' }).end('aaaaa');
      res.writeHead(404).end();
    });
    srv = await spawnServe();
  });
  afterAll(async () => {
    await srv?.stop();
    await up?.close();
    cleanupScratch();
  });

  it('one pino JSON line per request on stdout, with repo, source and bytes', async () => {
    for (const args of [['repo', 'add', 'loc', '--format', 'generic', '--kind', 'local'], ['repo', 'add', 'rem', '--format', 'generic', '--kind', 'remote', '--upstream', `${up.url}/pkg/`]]) {
      const r = await runCli([...args, '--url', srv.url]);
      expect(r.code, r.stderr).toBe(0);
    }
    const payload = Buffer.alloc(12345, 1);
    const calls: Array<[string, string, number, Record<string, unknown>]> = [
      ['PUT', '/loc/dir/file.bin', 201, { repo: 'loc' }],
      ['GET', '/loc/dir/file.bin', 200, { repo: 'loc', source: 'local', bytes: payload.length }],
      ['GET', '/rem/a.tar.gz', 200, { repo: 'rem', source: 'remote', bytes: 5 }],
      ['GET', '/rem/a.tar.gz', 200, { repo: 'rem', source: 'cache', bytes: 5 }],
      ['GET', '/loc/missing.bin', 404, { repo: 'loc' }],
      ['GET', '/health', 200, {}],
    ];
    // the two `repo add` POSTs are logged too; wait for them, so what follows is ours alone
    await until(() => srv.logs().filter((l) => l.msg === 'request' && l.method === 'POST' && l.url === '/api/v1/repositories').length === 2);
    const before = srv.logs().filter((l) => l.msg === 'request').length;
    for (const [method, path, status] of calls) {
      const res = await fetch(`${srv.url}${path}`, { method, body: method === 'PUT' ? payload : undefined });
      expect(res.status, `${method} ${path}`).toBe(status);
      await res.arrayBuffer();
    }
    await until(() => srv.logs().filter((l) => l.msg === 'request').length >= before + calls.length);
    await sleep(200); // and no second line arrives for any of them
    const lines = srv.logs().filter((l) => l.msg === 'request').slice(before);
    expect(lines).toHaveLength(calls.length);
    lines.forEach((l, i) => {
      const [method, url, status, fields] = calls[i];
      expect(l).toMatchObject({ level: 30, method, url, status, ...fields });
      expect(typeof l.reqId).toBe('string');
      expect(typeof l.ms).toBe('number');
      expect(typeof l.time).toBe('number');
    });
    // every request line is a distinct request
    expect(new Set(lines.map((l) => l.reqId)).size).toBe(calls.length);
    // stdout holds nothing but JSON lines
    expect(srv.lines.filter((l) => l.trim() !== '').every((l) => l.startsWith('{') && JSON.parse(l))).toBe(true);
  });
});
