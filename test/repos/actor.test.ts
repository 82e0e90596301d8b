import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authServer, bearer, type AuthTools } from '../auth/helpers.js';
import type { TestServer } from '../helpers/server.js';

/** Every row write and removal knows who made it without the format passing it along (repos/writes.ts actingAs). */
describe('row writes carry the acting identity', () => {
  let srv: TestServer & AuthTools;
  const lines: string[] = [];
  let token = '';
  let tokenId = '';

  beforeAll(async () => {
    srv = await authServer({ 'server.log_level': 'debug', 'auth.anonymous': 'write' }, { logLines: lines });
    await srv.addRepo({ name: 'files', format: 'generic', kind: 'local' });
    await srv.user('dev', 'dev-pass-123', [['*', ['delete']]]);
    ({ token, id: tokenId } = await srv.token('dev', 'dev-pass-123'));
  });
  afterAll(() => srv?.close());

  const rowLines = (msg: string, path: string) => lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === msg && l.path === path);

  it('names the user and token of the request on the publish and the removal,', async () => {
    const put = await fetch(`${srv.url}/files/a/b.txt`, { method: 'PUT', body: 'x', headers: { authorization: bearer(token) } });
    expect(put.status).toBe(201);
    expect(rowLines('file published', 'a/b.txt')).toEqual([expect.objectContaining({ repo: 'files', user: 'dev', tokenId })]);
    const del = await fetch(`${srv.url}/files/a/b.txt`, { method: 'DELETE', headers: { authorization: bearer(token) } });
    expect(del.status).toBe(204);
    expect(rowLines('row removed', 'a/b.txt')).toEqual([expect.objectContaining({ repo: 'files', user: 'dev', tokenId })]);
  });

  it('names anonymous when no credentials came', async () => {
    expect((await fetch(`${srv.url}/files/anon.txt`, { method: 'PUT', body: 'y' })).status).toBe(201);
    expect(rowLines('file published', 'anon.txt')).toEqual([expect.objectContaining({ repo: 'files', user: 'anonymous' })]);
  });
});
