import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';
import { freshPgSchema, NO_POSTGRES, NO_REDIS, POSTGRES_URL, REDIS_URL, startS3, uniq, type TestS3 } from '../helpers/stores.js';
import { startUpstream, type FakeUpstream } from '../helpers/upstream.js';

const skip = !POSTGRES_URL ? NO_POSTGRES : !REDIS_URL ? NO_REDIS : undefined;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * Two instances (separate Services, separate data dirs, as two hosts behind a
 * balancer) sharing one Postgres, one S3 (s3rver) and one Redis.
 */
describe.skipIf(!!skip)(`two instances on one Postgres + S3 + Redis${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let s3: TestS3;
  let pgSchema: Awaited<ReturnType<typeof freshPgSchema>>;
  let a: TestServer;
  let b: TestServer;
  let up: FakeUpstream;
  const big = randomBytes(3_000_000);

  beforeAll(async () => {
    s3 = await startS3();
    pgSchema = await freshPgSchema();
    const bucket = uniq('stack').replace(/_/g, '-');
    const flags = {
      'database.url': pgSchema.url, 'database.pool_size': 5,
      'storage.type': 's3', 'storage.endpoint': s3.endpoint, 'storage.bucket': bucket,
      'storage.access_key': s3.accessKey, 'storage.secret_key': s3.secretKey, 'storage.force_path_style': true,
      'redis.url': REDIS_URL,
    };
    a = await startServer(flags);
    b = await startServer(flags);
    up = await startUpstream(async (req, res) => {
      if (req.url !== '/pkg/big.bin') return void res.writeHead(404).end();
      // Slow enough that all 20 requests arrive while the first fill is still running.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(big.length) });
      for (let i = 0; i < big.length; i += 300_000) {
        res.write(big.subarray(i, i + 300_000));
        await new Promise((r) => setTimeout(r, 30));
      }
      res.end();
    });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await up?.close();
    await s3?.close();
    await pgSchema?.drop();
  });

  it('a repo created through one instance exists on the other; an upload through one downloads through the other', async () => {
    await a.addRepo({ name: 'shared-local', format: 'generic', kind: 'local' });
    const list = await (await fetch(`${b.url}/api/v1/repositories`)).json();
    expect(JSON.stringify(list)).toContain('shared-local');

    const body = randomBytes(7 * 1024 * 1024); // above the multipart part size
    const put = await fetch(`${a.url}/shared-local/dir/file.bin`, { method: 'PUT', body });
    expect(put.status).toBe(201);

    const get = await fetch(`${b.url}/shared-local/dir/file.bin`);
    expect(get.status).toBe(200);
    expect(get.headers.get('x-artifact-source')).toBe('local');
    expect(get.headers.get('etag')).toBe(`"${sha(body)}"`);
    expect(sha(Buffer.from(await get.arrayBuffer()))).toBe(sha(body));

    const range = await fetch(`${b.url}/shared-local/dir/file.bin`, { headers: { range: 'bytes=100-199' } });
    expect(range.status).toBe(206);
    expect(Buffer.from(await range.arrayBuffer()).equals(body.subarray(100, 200))).toBe(true);

    const del = await fetch(`${b.url}/shared-local/dir/file.bin`, { method: 'DELETE' });
    expect(del.status).toBe(204);
    expect((await fetch(`${a.url}/shared-local/dir/file.bin`)).status).toBe(404);
  });

  it('20 concurrent misses spread over both instances make one upstream request', async () => {
    await a.addRepo({ name: 'shared-remote', format: 'generic', kind: 'remote', upstream: `${up.url}/` });
    const urls = Array.from({ length: 20 }, (_, i) => `${(i % 2 ? a : b).url}/shared-remote/pkg/big.bin`);
    const replies = await Promise.all(urls.map(async (u) => {
      const r = await fetch(u);
      return { status: r.status, source: r.headers.get('x-artifact-source'), hash: sha(Buffer.from(await r.arrayBuffer())) };
    }));
    expect(up.count('/pkg/big.bin')).toBe(1);
    for (const r of replies) {
      expect(r.status).toBe(200);
      expect(r.hash).toBe(sha(big));
    }
    // Later requests, through either instance, come from the shared cache even with the upstream gone.
    await up.close();
    for (const s of [a, b]) {
      const r = await fetch(`${s.url}/shared-remote/pkg/big.bin`);
      expect(r.headers.get('x-artifact-source')).toBe('cache');
      expect(sha(Buffer.from(await r.arrayBuffer()))).toBe(sha(big));
    }
  });

  it('a docker chunked upload can go on through the other instance (parts live in the shared bucket)', async () => {
    await a.addRepo({ name: 'shared-docker', format: 'docker', kind: 'local' });
    const layer = randomBytes(6 * 1024 * 1024 + 123);
    const cut = 5 * 1024 * 1024 + 7;
    const start = await fetch(`${a.url}/v2/shared-docker/app/blobs/uploads/`, { method: 'POST' });
    expect(start.status).toBe(202);
    const loc = start.headers.get('location')!;
    const p1 = await fetch(`${a.url}${loc}`, { method: 'PATCH', body: layer.subarray(0, cut), headers: { 'content-range': `0-${cut - 1}` } });
    expect(p1.headers.get('range')).toBe(`0-${cut - 1}`);
    const status = await fetch(`${b.url}${loc}`);
    expect(status.status).toBe(204);
    expect(status.headers.get('range')).toBe(`0-${cut - 1}`);
    const p2 = await fetch(`${b.url}${loc}`, { method: 'PATCH', body: layer.subarray(cut), headers: { 'content-range': `${cut}-${layer.length - 1}` } });
    expect(p2.headers.get('range')).toBe(`0-${layer.length - 1}`);
    const digest = `sha256:${sha(layer)}`;
    const wrong = await fetch(`${a.url}${loc}?digest=sha256:${sha(Buffer.from('x'))}`, { method: 'PUT' });
    expect(wrong.status).toBe(400);
    expect((await wrong.json()).errors[0].code).toBe('DIGEST_INVALID');

    const again = await fetch(`${b.url}/v2/shared-docker/app/blobs/uploads/`, { method: 'POST' });
    const loc2 = again.headers.get('location')!;
    await fetch(`${b.url}${loc2}`, { method: 'PATCH', body: layer.subarray(0, cut) });
    const fin = await fetch(`${a.url}${loc2}?digest=${digest}`, { method: 'PUT', body: layer.subarray(cut) });
    expect(fin.status).toBe(201);
    const got = await fetch(`${b.url}/v2/shared-docker/app/blobs/${digest}`);
    expect(got.status).toBe(200);
    expect(sha(Buffer.from(await got.arrayBuffer()))).toBe(sha(layer));
    const left = [];
    for await (const x of a.svc.blob.parts.sessions()) left.push(x.session);
    expect(left).toEqual([]);
  });
});
