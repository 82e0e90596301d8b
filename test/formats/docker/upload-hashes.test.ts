import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UPLOAD_HASHES } from '../../../src/formats/docker/uploads.js';
import type { Services } from '../../../src/repos/services.js';
import { startServer, type TestServer } from '../../helpers/server.js';
import { closeServer } from './util.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
/** This server's running upload hashes (made here with the bounds uploads.ts would give, unless a test made it first). */
const hashes = (svc: Services) => svc.caches.lru(UPLOAD_HASHES.name, UPLOAD_HASHES.maxEntries * 512, UPLOAD_HASHES.maxEntries);

/**
 * The running sha256 of open docker uploads lives in a bounded cache of the server. An upload
 * whose hash was evicted is re-hashed from its staged parts at the final PUT: still published
 * when the digest is right, still refused when it is wrong.
 */
describe('docker upload hashes: bounded, per server, eviction falls back to re-hashing', () => {
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    [a, b] = await Promise.all([startServer(), startServer()]);
    // Before the first upload: the cache takes these bounds (2 open uploads hashed at once).
    a.svc.caches.lru(UPLOAD_HASHES.name, 1024 * 1024, 2);
    for (const s of [a, b]) await s.addRepo({ name: 'up', format: 'docker', kind: 'local' });
  });
  afterAll(async () => Promise.all([closeServer(a), closeServer(b)]));

  /** POST a session and PATCH one chunk into it; its Location. */
  async function open(srv: TestServer, body: Buffer): Promise<string> {
    const start = await fetch(`${srv.url}/v2/up/img/blobs/uploads/`, { method: 'POST' });
    expect(start.status).toBe(202);
    const loc = start.headers.get('location')!;
    const patch = await fetch(`${srv.url}${loc}`, { method: 'PATCH', body: new Uint8Array(body), headers: { 'content-range': `0-${body.length - 1}` } });
    expect(patch.status).toBe(202);
    return loc;
  }
  const finish = (srv: TestServer, loc: string, digest: string) => fetch(`${srv.url}${loc}?digest=${digest}`, { method: 'PUT' });
  const idOf = (loc: string) => loc.split('/').pop()!;

  it('holds at most the bound; an evicted upload publishes with the right digest and is refused with a wrong one', async () => {
    const bodies = [0, 1, 2, 3].map(() => randomBytes(3000));
    const locs: string[] = [];
    for (const body of bodies) locs.push(await open(a, body));
    expect(hashes(a.svc).size).toBe(2);
    // the two oldest were evicted: their hashes are gone, the newest two kept
    expect(locs.map((l) => hashes(a.svc).get(idOf(l)) !== undefined)).toEqual([false, false, true, true]);

    const evictedOk = await finish(a, locs[0], sha(bodies[0]));
    expect(evictedOk.status).toBe(201);
    expect(evictedOk.headers.get('docker-content-digest')).toBe(sha(bodies[0]));
    const blob = await fetch(`${a.url}/v2/up/img/blobs/${sha(bodies[0])}`);
    expect(blob.status).toBe(200);
    expect(Buffer.from(await blob.arrayBuffer()).equals(bodies[0])).toBe(true);

    const evictedBad = await finish(a, locs[1], sha(bodies[2]));
    expect(evictedBad.status).toBe(400);
    expect((await evictedBad.json()).errors[0].code).toBe('DIGEST_INVALID');
    expect((await fetch(`${a.url}/v2/up/img/blobs/${sha(bodies[2])}`)).status).toBe(404);

    expect((await finish(a, locs[2], sha(bodies[2]))).status).toBe(201);
    const keptBad = await finish(a, locs[3], sha(bodies[0]));
    expect(keptBad.status).toBe(400);
    expect((await keptBad.json()).errors[0].code).toBe('DIGEST_INVALID');
    // finished and refused sessions leave the cache
    expect(hashes(a.svc).size).toBe(0);
  });

  it('two servers in one process do not share upload hashes', async () => {
    const body = randomBytes(1000);
    const loc = await open(a, body);
    expect(hashes(a.svc).get(idOf(loc))).toBeDefined();
    expect(hashes(b.svc).size).toBe(0);
    expect((await finish(a, loc, sha(body))).status).toBe(201);
  });
});
