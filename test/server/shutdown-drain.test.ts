import { createHash, randomBytes } from 'node:crypto';
import { get, type IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupScratch, ensureDist, runCli, spawnServe } from '../cli/bin.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Reads `res` at about `bytesPerSecond`, so the server's socket buffers stay full. */
function pacedRead(res: IncomingMessage, bytesPerSecond: number) {
  const chunks: Buffer[] = [];
  let received = 0;
  const t0 = Date.now();
  const done = new Promise<{ body: Buffer; complete: boolean }>((resolve) => {
    res.on('data', (c: Buffer) => {
      chunks.push(c);
      received += c.length;
      const ahead = received / bytesPerSecond * 1000 - (Date.now() - t0);
      if (ahead > 0) {
        res.pause();
        setTimeout(() => res.resume(), ahead);
      }
    });
    res.on('end', () => resolve({ body: Buffer.concat(chunks), complete: res.complete }));
    res.on('error', () => resolve({ body: Buffer.concat(chunks), complete: false }));
  });
  return { done, received: () => received };
}

describe('SIGTERM during a slowly read download of a stored file', () => {
  beforeAll(() => ensureDist());
  afterAll(() => cleanupScratch());

  it('the transfer ends byte-exact (the held-back, hash-checked tail included), new connections are refused, exit 0', async () => {
    const srv = await spawnServe();
    try {
      const add = await runCli(['repo', 'add', 'files', '--format', 'generic', '--kind', 'local', '--url', srv.url]);
      expect(add.code, add.stderr).toBe(0);
      const body = randomBytes(48 * 1024 * 1024);
      const put = await fetch(`${srv.url}/files/big.bin`, { method: 'PUT', body });
      expect(put.status).toBe(201);

      const res = await new Promise<IncomingMessage>((resolve, reject) => get(`${srv.url}/files/big.bin`, { agent: false }, resolve).on('error', reject));
      expect(res.statusCode).toBe(200);
      const read = pacedRead(res, 12 * 1024 * 1024);
      while (read.received() < 8 * 1024 * 1024) await sleep(20);
      srv.child.kill('SIGTERM');
      await sleep(300);
      const refused = await fetch(`${srv.url}/health`).then((r) => `status ${r.status}`, (e: Error & { cause?: { code?: string } }) => e.cause?.code ?? e.message);
      expect(refused).toBe('ECONNREFUSED');

      const end = await read.done;
      expect(end.body.length).toBe(body.length);
      expect(end.complete).toBe(true);
      expect(sha(end.body)).toBe(sha(body));
      expect(await srv.exited).toBe(0);
    } finally {
      await srv.stop('SIGKILL');
    }
  });

  it('server.shutdown_timeout bounds the drain: a transfer still running then is dropped and the exit code is 1', async () => {
    const srv = await spawnServe([], { env: { ARTIFACTAPI_SERVER_SHUTDOWN_TIMEOUT: '1s' } });
    try {
      expect((await runCli(['repo', 'add', 'files', '--format', 'generic', '--kind', 'local', '--url', srv.url])).code).toBe(0);
      const body = randomBytes(16 * 1024 * 1024);
      expect((await fetch(`${srv.url}/files/big.bin`, { method: 'PUT', body })).status).toBe(201);
      const res = await new Promise<IncomingMessage>((resolve, reject) => get(`${srv.url}/files/big.bin`, { agent: false }, resolve).on('error', reject));
      const read = pacedRead(res, 4 * 1024 * 1024); // 4 s at this pace
      while (read.received() < 1024 * 1024) await sleep(20);
      const t0 = Date.now();
      srv.child.kill('SIGTERM');
      expect(await srv.exited).toBe(1);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect((await read.done).complete).toBe(false);
      expect(srv.logs().some((l) => l.msg === 'shutdown timed out; dropping the transfers still running')).toBe(true);
    } finally {
      await srv.stop('SIGKILL');
    }
  });
});
