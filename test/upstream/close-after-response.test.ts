import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { closedPort } from '../cli/bin.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { startUpstream, type FakeUpstream } from '../helpers/upstream.js';
import { which } from '../helpers/which.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** GET that reads slowly at first (so the server's fill meets backpressure), resolving with the body. */
function slowGet(url: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        res.pause();
        setTimeout(() => res.resume(), 1);
      });
      res.on('error', reject);
      res.on('end', () => (res.complete ? resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }) : reject(new Error('incomplete'))));
    }).on('error', reject);
  });
}

describe('an upstream that closes its connection after every response (python http.server)', () => {
  let srv: TestServer | undefined;
  let up: FakeUpstream | undefined;
  afterEach(async () => {
    await srv?.close();
    await up?.close();
  });

  it('8 rounds of 6 concurrent 1-6 MiB fills: every body arrives byte-exact and the process never throws', async () => {
    const files = Array.from({ length: 48 }, (_, i) => randomBytes((1 + (i % 6)) * 1024 * 1024));
    up = await startUpstream((req, res) => {
      const i = Number((req.url ?? '').match(/f(\d+)\.bin$/)?.[1]);
      const body = files[i];
      if (!body) return void res.writeHead(404).end();
      // As http.server does: Connection: close, the whole body, then the socket is closed at once.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.length), connection: 'close' });
      res.end(body, () => res.socket?.destroy());
    });
    srv = await startServer();
    await srv.addRepo({ name: 'py', format: 'generic', kind: 'remote', upstream: `${up.url}/` });
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      for (let round = 0; round < 8; round++) {
        const batch = Array.from({ length: 6 }, (_, k) => round * 6 + k);
        const got = await Promise.all(batch.map((i) => slowGet(`${srv!.url}/py/f${i}.bin`)));
        got.forEach((g, k) => {
          expect(g.status).toBe(200);
          expect(sha(g.body)).toBe(sha(files[batch[k]]));
        });
      }
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(uncaught).toEqual([]);
  });
});

describe.skipIf(!which('python3'))('python3 -m http.server as the upstream', () => {
  it('4 rounds of 6 concurrent 1-6 MiB fills, byte-exact, no uncaught error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'artifactapi-pyhttp-'));
    const files = Array.from({ length: 24 }, (_, i) => randomBytes((1 + (i % 6)) * 1024 * 1024));
    files.forEach((f, i) => writeFileSync(join(dir, `f${i}.bin`), f));
    const port = await closedPort();
    const py = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', dir], { stdio: 'ignore' });
    const srv = await startServer();
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      for (let i = 0; ; i++) {
        if (await fetch(`http://127.0.0.1:${port}/`).then((r) => r.ok, () => false)) break;
        if (i > 100) throw new Error('http.server did not start');
        await new Promise((r) => setTimeout(r, 100));
      }
      await srv.addRepo({ name: 'py', format: 'generic', kind: 'remote', upstream: `http://127.0.0.1:${port}/` });
      for (let round = 0; round < 4; round++) {
        const batch = Array.from({ length: 6 }, (_, k) => round * 6 + k);
        const got = await Promise.all(batch.map((i) => slowGet(`${srv.url}/py/f${i}.bin`)));
        got.forEach((g, k) => expect(sha(g.body)).toBe(sha(files[batch[k]])));
      }
    } finally {
      process.off('uncaughtException', onUncaught);
      py.kill('SIGKILL');
      await srv.close();
      rmSync(dir, { recursive: true, force: true });
    }
    expect(uncaught).toEqual([]);
  });
});

describe('an upstream that cuts the body of an answer we only drain', () => {
  let srv: TestServer | undefined;
  let up: FakeUpstream | undefined;
  afterEach(async () => {
    await srv?.close();
    await up?.close();
  });

  it('404 and redirect bodies cut short: the client gets its answer, the process never throws', async () => {
    up = await startUpstream((req, res) => {
      if (req.url === '/moved.bin') res.writeHead(302, { location: '/gone.bin', 'content-length': '100000' });
      else res.writeHead(404, { 'content-length': '100000' });
      res.write('x'.repeat(10));
      setTimeout(() => res.socket?.destroy(), 20);
    });
    srv = await startServer();
    await srv.addRepo({ name: 'py', format: 'generic', kind: 'remote', upstream: `${up.url}/` });
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      for (const path of ['missing.bin', 'moved.bin']) {
        const r = await fetch(`${srv.url}/py/${path}`);
        expect(r.status).toBe(404);
        await r.arrayBuffer();
      }
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(uncaught).toEqual([]);
    expect((await fetch(`${srv.url}/health`)).status).toBe(200);
  });
});
