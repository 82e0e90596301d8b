import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { freshPgSchema, NO_POSTGRES, POSTGRES_URL } from '../helpers/stores.js';
import { authServer, basic, bearer, type AuthTools } from './helpers.js';
import type { TestServer } from '../helpers/server.js';

const BAD_CREDENTIALS = { error: { code: 'UNAUTHORIZED', message: 'bad credentials' } };
const HIDDEN = { error: { code: 'REPO_NOT_FOUND', message: 'no repository named "priv"' } };

/**
 * Each instance caches users, tokens and grants and reads only the store's auth epoch per request
 * (src/auth/cache.ts). Two instances on one store: whatever changes on A holds on B's very next
 * request, though B had the old rows cached. SQLite: two servers on one data dir (as `--workers`
 * processes share it); Postgres: two data dirs, one database.
 */
const backends: { name: string; skip?: string; open(): Promise<{ a: TestServer & AuthTools; b: TestServer & AuthTools; done(): Promise<void> }> }[] = [
  {
    name: 'SQLite, one data dir',
    async open() {
      const a = await authServer({ 'database.url': '' });
      const db = { 'database.url': `sqlite://${a.dataDir}/artifactapi.db` };
      const b = await authServer(db, { keepDataDir: a.dataDir });
      return { a, b, done: async () => { await b.close(); await a.close(); } };
    },
  },
  {
    name: 'Postgres, two data dirs',
    skip: POSTGRES_URL ? undefined : NO_POSTGRES,
    async open() {
      const schema = await freshPgSchema();
      const a = await authServer({ 'database.url': schema.url });
      const b = await authServer({ 'database.url': schema.url });
      return { a, b, done: async () => { await a.close(); await b.close(); await schema.drop(); } };
    },
  },
];

for (const backend of backends) {
  describe.skipIf(!!backend.skip)(`identity cache across two instances, ${backend.name}${backend.skip ? ` (skipped: ${backend.skip})` : ''}`, () => {
    let a: TestServer & AuthTools;
    let b: TestServer & AuthTools;
    let done: () => Promise<void>;
    const get = (srv: TestServer, auth: string, path = '/priv/f.txt') => fetch(`${srv.url}${path}`, { headers: { authorization: auth } });

    beforeAll(async () => {
      ({ a, b, done } = await backend.open());
      await a.addRepo({ name: 'priv', format: 'generic', kind: 'local', anonymous: 'none' });
      // Written through B, so B's own blob store has the bytes (on Postgres each instance has its own).
      const put = await fetch(`${b.url}/priv/f.txt`, { method: 'PUT', body: 'data', headers: { authorization: a.adminAuth } });
      expect(put.status).toBe(201);
      await a.user('carol', 'carol-pass-1', [['priv', ['read']]]);
      await a.user('dave', 'dave-pass-12', [['priv', ['read']]]);
      await a.user('erin', 'erin-pass-12', [['priv', ['read']]]);
    });
    afterAll(async () => done?.());

    it('a token B has cached is refused by B on the first request after A revokes it', async () => {
      const { id, token } = await a.token('carol', 'carol-pass-1');
      for (let i = 0; i < 2; i++) expect((await get(b, bearer(token))).status).toBe(200);
      const revoked = await fetch(`${a.url}/api/v1/tokens/${id}`, { method: 'DELETE', headers: { authorization: basic('carol', 'carol-pass-1') } });
      expect(revoked.status).toBe(204);
      const refused = await get(b, bearer(token));
      expect(refused.status).toBe(401);
      expect(await refused.json()).toEqual(BAD_CREDENTIALS);
      expect((await get(b, basic('__token__', token))).status).toBe(401);
    });

    it('a grant removed on A stops B at once; given back, B honours it at once', async () => {
      const { token } = await a.token('dave', 'dave-pass-12');
      const ok = await get(b, bearer(token));
      expect(ok.status).toBe(200);
      expect(await ok.text()).toBe('data');
      expect((await a.api('DELETE', '/api/v1/permissions?subject=dave&pattern=priv')).status).toBe(204);
      const hidden = await get(b, bearer(token));
      expect(hidden.status).toBe(404);
      expect(await hidden.json()).toEqual(HIDDEN);
      expect((await a.api('POST', '/api/v1/permissions', { subject: 'dave', pattern: 'priv', actions: ['read'] })).status).toBe(201);
      expect((await get(b, bearer(token))).status).toBe(200);
    });

    it('a password changed on A and a user removed on A hold at once on B', async () => {
      const { token } = await a.token('erin', 'erin-pass-12');
      expect((await get(b, basic('erin', 'erin-pass-12'))).status).toBe(200);
      expect((await a.api('PUT', '/api/v1/users/erin/password', { password: 'erin-pass-new' })).status).toBe(204);
      const old = await get(b, basic('erin', 'erin-pass-12'));
      expect(old.status).toBe(401);
      expect(await old.json()).toEqual(BAD_CREDENTIALS);
      expect((await get(b, basic('erin', 'erin-pass-new'))).status).toBe(200);
      expect((await get(b, bearer(token))).status).toBe(200);
      expect((await a.api('DELETE', '/api/v1/users/erin')).status).toBe(204);
      expect((await get(b, bearer(token))).status).toBe(401);
      expect((await get(b, basic('erin', 'erin-pass-new'))).status).toBe(401);
    });

    it('with nothing changed, a request with a known token reads the epoch and no identity row', async () => {
      const { token } = await a.token('carol', 'carol-pass-1');
      expect((await get(b, bearer(token))).status).toBe(200);
      const s = b.svc.auth.store;
      const spies = [vi.spyOn(s.tokens, 'byHash'), vi.spyOn(s.users, 'get'), vi.spyOn(s.grants, 'list')];
      const epoch = vi.spyOn(s, 'epoch');
      try {
        for (let i = 0; i < 5; i++) expect((await get(b, bearer(token))).status).toBe(200);
        expect(spies.map((x) => x.mock.calls.length)).toEqual([0, 0, 0]);
        expect(epoch.mock.calls.length).toBe(5);
      } finally {
        for (const x of [...spies, epoch]) x.mockRestore();
      }
    });
  });
}
