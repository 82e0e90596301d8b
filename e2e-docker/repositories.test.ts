import { afterAll, describe, expect, it } from 'vitest';
import { createRepo, deleteRepos, get, http } from './lib/api.js';
import { repoName, UPSTREAM_FOR_SERVER } from './lib/env.js';

/** Repository lifecycle through the management API: add, show, list, change, delete, for each kind. */
describe('repository lifecycle', () => {
  const local = repoName('life-local');
  const remote = repoName('life-remote');
  const virtual = repoName('life-virtual');
  afterAll(async () => deleteRepos([virtual, remote, local]));

  it('answers /health', async () => {
    const r = await get('/health');
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ status: 'ok' });
  });

  it('adds a local, a remote and a virtual repository and shows them', async () => {
    expect((await createRepo({ name: local, format: 'generic', kind: 'local' })).kind).toBe('local');
    const rem = await createRepo({ name: remote, format: 'generic', kind: 'remote', upstream: `${UPSTREAM_FOR_SERVER}/generic` });
    expect(rem.upstream).toBe(`${UPSTREAM_FOR_SERVER}/generic/`); // a trailing slash never changes the meaning
    expect((await createRepo({ name: virtual, format: 'generic', kind: 'virtual', members: [local, remote] })).members).toEqual([local, remote]);

    for (const [name, kind] of [[local, 'local'], [remote, 'remote'], [virtual, 'virtual']]) {
      const r = await get(`/api/v1/repositories/${name}`);
      expect(r.status).toBe(200);
      expect(r.json()).toMatchObject({ name, format: 'generic', kind });
    }
    const names = (await get('/api/v1/repositories')).json().map((x: { name: string }) => x.name);
    expect(names).toEqual(expect.arrayContaining([local, remote, virtual]));
  });

  it('refuses a duplicate, a bad name, an unknown format and an unknown member', async () => {
    const dup = await http('POST', '/api/v1/repositories', { body: { name: local, format: 'generic', kind: 'local' } });
    expect(dup.status).toBe(409);
    expect(dup.json().error.code).toBeTruthy();
    expect((await http('POST', '/api/v1/repositories', { body: { name: 'Bad Name', format: 'generic', kind: 'local' } })).status).toBe(400);
    expect((await http('POST', '/api/v1/repositories', { body: { name: 'api', format: 'generic', kind: 'local' } })).status).toBe(400);
    expect((await http('POST', '/api/v1/repositories', { body: { name: repoName('x'), format: 'nope', kind: 'local' } })).status).toBe(400);
    expect((await http('POST', '/api/v1/repositories', { body: { name: repoName('y'), format: 'generic', kind: 'virtual', members: [repoName('missing')] } })).status).toBe(400);
    expect((await get(`/api/v1/repositories/${repoName('missing')}`)).status).toBe(404);
  });

  it('changes a remote upstream and a virtual member list', async () => {
    const r = await http('PUT', `/api/v1/repositories/${remote}`, {
      body: { format: 'generic', kind: 'remote', upstream: `${UPSTREAM_FOR_SERVER}/generic/releases/`, metadata_ttl: '30s' },
    });
    expect(r.status).toBe(200);
    expect(r.json().upstream).toBe(`${UPSTREAM_FOR_SERVER}/generic/releases/`);
    expect((await get(`/api/v1/repositories/${remote}`)).json().upstream).toBe(`${UPSTREAM_FOR_SERVER}/generic/releases/`);

    const v = await http('PUT', `/api/v1/repositories/${virtual}`, { body: { format: 'generic', kind: 'virtual', members: [remote] } });
    expect(v.status).toBe(200);
    expect((await get(`/api/v1/repositories/${virtual}`)).json().members).toEqual([remote]);
    // The format of an existing repo cannot change (409; 400 while the build lacks that format).
    expect([400, 409]).toContain((await http('PUT', `/api/v1/repositories/${local}`, { body: { format: 'npm', kind: 'local' } })).status);
    expect((await get(`/api/v1/repositories/${local}`)).json().format).toBe('generic');
  });

  it('deletes them: a member in use is refused until its virtual repo is gone', async () => {
    expect((await http('DELETE', `/api/v1/repositories/${remote}`)).status).toBe(409);
    for (const name of [virtual, remote, local]) {
      expect((await http('DELETE', `/api/v1/repositories/${name}`)).status).toBe(204);
      expect((await get(`/api/v1/repositories/${name}`)).status).toBe(404);
    }
    const names = (await get('/api/v1/repositories')).json().map((x: { name: string }) => x.name);
    expect(names).not.toContain(local);
  });
});
