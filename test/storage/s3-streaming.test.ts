import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';
import { startS3, uniq, type TestS3 } from '../helpers/stores.js';
import { startUpstream, type FakeUpstream } from '../helpers/upstream.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;

/** Bytes in files under `dir`, leaving out the SQLite database. */
function localBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(e.parentPath ?? dir, e.name);
    if (e.isDirectory()) n += localBytes(p);
    else if (e.isFile() && !/\.db(-wal|-shm|-journal)?$/.test(e.name)) n += statSync(p).size;
  }
  return n;
}

/** Samples localBytes every 10 ms while `work` runs; resolves with the work's result and the peak. */
async function peakLocalBytes<T>(dir: string, work: () => Promise<T>): Promise<{ result: T; peak: number }> {
  let peak = 0;
  let running = true;
  const sampler = (async () => {
    while (running) {
      peak = Math.max(peak, localBytes(dir));
      await sleep(10);
    }
  })();
  try {
    return { result: await work(), peak };
  } finally {
    running = false;
    await sampler;
  }
}

async function* slowly(body: Buffer, chunk: number, pauseMs: number) {
  for (let i = 0; i < body.length; i += chunk) {
    yield body.subarray(i, i + chunk);
    await sleep(pauseMs);
  }
}

/**
 * [storage] type = "s3": bytes stream between the client, the upstream and S3 with no copy of
 * the blob on local disk (s3rver as the S3 server, SQLite for metadata).
 */
describe('S3 storage streams without a local copy', () => {
  let s3: TestS3;
  let srv: TestServer;
  let up: FakeUpstream;
  const upstreamBody = randomBytes(40 * MiB);

  beforeAll(async () => {
    s3 = await startS3();
    srv = await startServer({
      'storage.type': 's3', 'storage.endpoint': s3.endpoint, 'storage.bucket': uniq('stream').replace(/_/g, '-'),
      'storage.access_key': s3.accessKey, 'storage.secret_key': s3.secretKey, 'storage.force_path_style': true,
    });
    up = await startUpstream(async (req, res) => {
      if (req.url !== '/big.bin') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(upstreamBody.length) });
      for await (const c of slowly(upstreamBody, MiB, 15)) res.write(c);
      res.end();
    });
    await srv.addRepo({ name: 'files', format: 'generic', kind: 'local' });
    await srv.addRepo({ name: 'proxy', format: 'generic', kind: 'remote', upstream: up.url });
  });
  afterAll(async () => {
    await srv?.close();
    await up?.close();
    await s3?.close();
  });

  it('an upload goes straight into S3 (multipart), never to a local temp file', async () => {
    const body = randomBytes(24 * MiB);
    const { result: status, peak } = await peakLocalBytes(srv.dataDir, async () => {
      const res = await fetch(`${srv.url}/files/big.bin`, {
        method: 'PUT', body: slowly(body, 256 * 1024, 3) as unknown as BodyInit, duplex: 'half',
      } as RequestInit);
      return res.status;
    });
    expect(status).toBe(201);
    expect(peak).toBeLessThan(MiB);
    const get = await fetch(`${srv.url}/files/big.bin`);
    expect(sha(Buffer.from(await get.arrayBuffer()))).toBe(sha(body));
  });

  it('a wrong checksum over S3 keeps nothing, not even a staging object', async () => {
    const body = randomBytes(7 * MiB);
    const res = await fetch(`${srv.url}/files/wrong.bin`, { method: 'PUT', body, headers: { 'x-checksum-sha256': sha(Buffer.from('other')) } });
    expect(res.status).toBe(400);
    expect(await srv.svc.blob.stat(`sha256:${sha(body)}`)).toBeNull();
    const left: string[] = [];
    for await (const l of srv.svc.blob.sweepStaging!(Date.now() + 3_600_000, true)) left.push(l.name);
    expect(left).toEqual([]);
  });

  it('a remote fill streams to a client that keeps up and to one that arrives after the memory window, with no local copy', async () => {
    const { result: bodies, peak } = await peakLocalBytes(srv.dataDir, async () => {
      const first = await fetch(`${srv.url}/proxy/big.bin`);
      expect(first.headers.get('x-artifact-source')).toBe('remote');
      const reader = first.body!.getReader();
      const got: Uint8Array[] = [];
      let n = 0;
      let late: Promise<Buffer> | undefined;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        got.push(value);
        n += value.length;
        // Well past the 8 MiB window: this one must go on from S3 once the fill commits.
        if (!late && n > 24 * MiB) late = fetch(`${srv.url}/proxy/big.bin`).then(async (r) => Buffer.from(await r.arrayBuffer()));
      }
      expect(n).toBeLessThan(upstreamBody.length + 1);
      return [Buffer.concat(got), await late!];
    });
    expect(sha(bodies[0])).toBe(sha(upstreamBody));
    expect(sha(bodies[1])).toBe(sha(upstreamBody));
    expect(up.count('/big.bin')).toBe(1);
    expect(peak).toBeLessThan(MiB);
    const again = await fetch(`${srv.url}/proxy/big.bin`);
    expect(again.headers.get('x-artifact-source')).toBe('cache');
    expect(sha(Buffer.from(await again.arrayBuffer()))).toBe(sha(upstreamBody));
  });
});
