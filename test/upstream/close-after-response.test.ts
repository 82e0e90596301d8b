import { createHash, randomBytes } from 'node:crypto';
import { get } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';
import { startUpstream, type FakeUpstream } from '../helpers/upstream.js';

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
