import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRepo, deleteRepos, get, http, sha256hex, upstreamHits } from '../lib/api.js';
import { fixture, repoName, UPSTREAM_FOR_SERVER } from '../lib/env.js';

/**
 * generic: one immutable artifact through a remote (remote, then cache, bytes
 * equal to the fixture), a local upload, and a virtual repo over both.
 * The model for one file per format: e2e-docker/formats/<format>.test.ts, with
 * its upstream tree under e2e-docker/fixtures/<format>/.
 */
describe('generic', () => {
  const local = repoName('generic-local');
  const remote = repoName('generic-remote');
  const virtual = repoName('generic-virtual');
  const artifact = 'releases/tool/1.0.0/tool-1.0.0-linux-amd64.tar.gz';
  const expected = fixture(`generic/${artifact}`);

  beforeAll(async () => {
    await createRepo({ name: local, format: 'generic', kind: 'local' });
    await createRepo({ name: remote, format: 'generic', kind: 'remote', upstream: `${UPSTREAM_FOR_SERVER}/generic/` });
    await createRepo({ name: virtual, format: 'generic', kind: 'virtual', members: [local, remote], default_local: local });
  });
  afterAll(async () => deleteRepos([virtual, remote, local]));

  it('remote: first GET comes from the upstream, the next from the cache, bytes equal the fixture', async () => {
    const before = await upstreamHits(`/generic/${artifact}`);
    const first = await get(`/${remote}/${artifact}`);
    expect(first.status).toBe(200);
    expect(first.headers.get('x-artifact-source')).toBe('remote');
    expect(first.headers.get('x-artifact-repo')).toBe(remote);
    expect(sha256hex(first.body)).toBe(sha256hex(expected));

    // The first client's last byte is held back until the fill is committed, so the next request is a cache hit.
    const second = await get(`/${remote}/${artifact}`);
    expect(second.status).toBe(200);
    expect(second.headers.get('x-artifact-source')).toBe('cache');
    expect(second.headers.get('x-artifact-repo')).toBe(remote);
    expect(second.headers.get('etag')).toBe(`"${sha256hex(expected)}"`);
    expect(second.headers.get('content-length')).toBe(String(expected.length));
    expect(second.headers.get('last-modified')).toBeTruthy();
    expect(second.body.equals(expected)).toBe(true);
    expect(await upstreamHits(`/generic/${artifact}`)).toBe(before + 1);

    const range = await get(`/${remote}/${artifact}`, { range: 'bytes=1000-1999' });
    expect(range.status).toBe(206);
    expect(range.body.equals(expected.subarray(1000, 2000))).toBe(true);
    const cond = await get(`/${remote}/${artifact}`, { 'if-none-match': `"${sha256hex(expected)}"` });
    expect(cond.status).toBe(304);
  });

  it('remote: unknown path is 404 with the JSON error shape; writes are 405', async () => {
    const miss = await get(`/${remote}/releases/none/nothing.bin`);
    expect(miss.status).toBe(404);
    expect(miss.json().error.code).toBeTruthy();
    expect((await http('PUT', `/${remote}/x.bin`, { body: Buffer.from('x') })).status).toBe(405);
  });

  it('local: upload then download, HEAD, overwrite, delete', async () => {
    const body = randomBytes(1_500_000);
    const put = await http('PUT', `/${local}/dir/data.bin`, { body });
    expect(put.status).toBe(201);
    expect(put.json().sha256).toBe(sha256hex(body));
    const got = await get(`/${local}/dir/data.bin`);
    expect(got.status).toBe(200);
    expect(got.headers.get('x-artifact-source')).toBe('local');
    expect(got.headers.get('x-artifact-repo')).toBe(local);
    expect(got.body.equals(body)).toBe(true);
    const head = await http('HEAD', `/${local}/dir/data.bin`);
    expect(head.headers.get('content-length')).toBe(String(body.length));

    const bad = await http('PUT', `/${local}/dir/bad.bin`, { body, headers: { 'x-checksum-sha256': sha256hex(Buffer.from('other')) } });
    expect(bad.status).toBe(400);
    expect((await get(`/${local}/dir/bad.bin`)).status).toBe(404);

    expect((await http('DELETE', `/${local}/dir/data.bin`)).status).toBe(204);
    expect((await get(`/${local}/dir/data.bin`)).status).toBe(404);
  });

  it('virtual: serves a local member file and a remote member file, naming the member; writes go to default_local', async () => {
    const body = Buffer.from(`local file ${Date.now()}`);
    expect((await http('PUT', `/${virtual}/mine/notes.bin`, { body })).status).toBe(201);
    const mine = await get(`/${virtual}/mine/notes.bin`);
    expect(mine.status).toBe(200);
    expect(mine.headers.get('x-artifact-repo')).toBe(local);
    expect(mine.body.equals(body)).toBe(true);
    expect((await get(`/${local}/mine/notes.bin`)).body.equals(body)).toBe(true);

    const theirs = await get(`/${virtual}/${artifact}`);
    expect(theirs.status).toBe(200);
    expect(theirs.headers.get('x-artifact-repo')).toBe(remote);
    expect(theirs.body.equals(expected)).toBe(true);

    expect((await get(`/${virtual}/no/such/file.bin`)).status).toBe(404);
  });
});
