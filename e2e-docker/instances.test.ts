import { createHash, randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createRepo, deleteRepos, upstreamHits } from './lib/api.js';
import { BASE, BASE_2, fixture, repoName, UPSTREAM_FOR_SERVER } from './lib/env.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Two instances behind one Postgres + S3 + Redis: runs when ARTIFACTAPI_URL_2 names the second. */
describe.skipIf(!BASE_2)(`two instances${BASE_2 ? '' : ' (skipped: ARTIFACTAPI_URL_2 is not set)'}`, () => {
  const local = repoName('multi-local');
  const remote = repoName('multi-remote');
  afterAll(async () => deleteRepos([remote, local]));

  it('an upload through one instance downloads through the other', async () => {
    await createRepo({ name: local, format: 'generic', kind: 'local' });
    const body = randomBytes(6 * 1024 * 1024);
    expect((await fetch(`${BASE}/${local}/blob.bin`, { method: 'PUT', body })).status).toBe(201);
    const r = await fetch(`${BASE_2}/${local}/blob.bin`);
    expect(r.status).toBe(200);
    expect(r.headers.get('x-artifact-source')).toBe('local');
    expect(sha(Buffer.from(await r.arrayBuffer()))).toBe(sha(body));
  });

  it('20 concurrent misses spread over both instances make one upstream request', async () => {
    const artifact = 'releases/tool/1.0.0/tool-1.0.0-linux-amd64.tar.gz';
    await createRepo({ name: remote, format: 'generic', kind: 'remote', upstream: `${UPSTREAM_FOR_SERVER}/slow/generic/` });
    const before = await upstreamHits(`/slow/generic/${artifact}`);
    const bodies = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const r = await fetch(`${i % 2 ? BASE : BASE_2}/${remote}/${artifact}`);
      expect(r.status).toBe(200);
      return sha(Buffer.from(await r.arrayBuffer()));
    }));
    expect(bodies).toEqual(Array(20).fill(sha(fixture(`generic/${artifact}`))));
    expect(await upstreamHits(`/slow/generic/${artifact}`)).toBe(before + 1);
  });
});
