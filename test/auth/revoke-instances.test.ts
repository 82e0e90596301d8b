import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshPgSchema, NO_POSTGRES, POSTGRES_URL } from '../helpers/stores.js';
import { authServer, basic, bearer, type AuthTools } from './helpers.js';
import type { TestServer } from '../helpers/server.js';

/** Two instances on one Postgres: the metadata store is the truth for tokens, so a revoke on one holds on the other at once. */
describe.skipIf(!POSTGRES_URL)(`token revocation across instances${POSTGRES_URL ? '' : ` (skipped: ${NO_POSTGRES})`}`, () => {
  let schema: Awaited<ReturnType<typeof freshPgSchema>>;
  let a: TestServer & AuthTools;
  let b: TestServer & AuthTools;

  beforeAll(async () => {
    schema = await freshPgSchema();
    a = await authServer({ 'database.url': schema.url });
    b = await authServer({ 'database.url': schema.url });
    await a.addRepo({ name: 'shared', format: 'generic', kind: 'local', anonymous: 'none' });
    await a.user('carol', 'carol-pass-1', [['shared', ['write']]]);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await schema?.drop();
  });

  it('a token made on A works on B, and once revoked on A it is refused by B on the very next request', async () => {
    const { id, token } = await a.token('carol', 'carol-pass-1');
    const put = (srv: TestServer, body: string) => fetch(`${srv.url}/shared/f.txt`, { method: 'PUT', body, headers: { authorization: bearer(token) } });
    expect((await put(b, 'one')).status).toBe(201);
    expect((await put(a, 'two')).status).toBe(201);
    const revoked = await fetch(`${a.url}/api/v1/tokens/${id}`, { method: 'DELETE', headers: { authorization: basic('carol', 'carol-pass-1') } });
    expect(revoked.status).toBe(204);
    const refused = await put(b, 'three');
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({ error: { code: 'UNAUTHORIZED', message: 'bad credentials' } });
    expect((await put(a, 'four')).status).toBe(401);
    // (each instance has its own blob store here; the rows are shared)
    const read = await fetch(`${a.url}/shared/f.txt`, { headers: { authorization: basic('carol', 'carol-pass-1') } });
    expect(await read.text()).toBe('two');
  });
});
