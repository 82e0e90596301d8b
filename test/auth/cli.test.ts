import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupScratch, ensureDist, runCli, scratchDir, spawnServe, type ServeProcess } from '../cli/bin.js';
import { join } from 'node:path';

const ok = (r: { code: number | null; stdout: string; stderr: string }) => {
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
};

describe('artifactapi user / token / perm', () => {
  beforeAll(() => ensureDist(), 180_000);
  afterAll(() => cleanupScratch());

  describe('through the API (--url, --token)', () => {
    let srv: ServeProcess;
    beforeAll(async () => {
      srv = await spawnServe([], { env: { ARTIFACTAPI_AUTH_ANONYMOUS: 'read' } });
    }, 60_000);
    afterAll(async () => srv?.stop());

    it('an admin makes a user, grants it a repo and a narrowed token that pushes there; without the token: 401', async () => {
      const cli = (...args: string[]) => runCli([...args, '--url', srv.url]);
      ok(await cli('repo', 'add', 'team', '--format', 'generic', '--kind', 'local', '--set', 'anonymous=none'));
      const made = JSON.parse(ok(await cli('user', 'add', 'carol', '--json')));
      expect(made).toMatchObject({ name: 'carol', admin: false });
      expect(made.password).toMatch(/^[A-Za-z0-9_-]{24}$/);
      expect(ok(await cli('perm', 'grant', 'carol', 'team', 'write'))).toBe('granted write on team to carol\n');
      expect(JSON.parse(ok(await cli('perm', 'list', '--json')))).toEqual([{ subject: 'carol', pattern: 'team', actions: ['write'], createdAt: expect.any(String) }]);

      const tok = JSON.parse(ok(await cli('token', 'create', '--user', 'carol', '--repo', 'team', '--actions', 'read,write', '--expires', '30d', '--json')));
      expect(tok.token).toMatch(/^aat_/);
      const put = await fetch(`${srv.url}/team/x.txt`, { method: 'PUT', body: 'x', headers: { authorization: `Bearer ${tok.token}` } });
      expect(put.status).toBe(201);
      const listed = JSON.parse(ok(await cli('token', 'list', '--user', 'carol', '--json')));
      expect(listed).toEqual([expect.objectContaining({ id: tok.id, user: 'carol', repos: ['team'], actions: ['read', 'write'] })]);
      expect(JSON.stringify(listed)).not.toContain(tok.token);

      // carol is no admin: her token cannot add users
      const refused = await runCli(['user', 'add', 'mallory', '--url', srv.url], { env: { ARTIFACTAPI_TOKEN: tok.token } });
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toBe('artifactapi: this needs an admin\n');
      const anon = await runCli(['user', 'list', '--url', srv.url], { env: { ARTIFACTAPI_TOKEN: '' } });
      expect(anon.stderr).toBe("artifactapi: authentication required (give an API token: --token or ARTIFACTAPI_TOKEN; on the server's host, run it where the data dir's admin.password is readable, e.g. next to ./data)\n");
      // repo list shows a non-admin only what it may read
      const seen = await runCli(['repo', 'list', '--json', '--url', srv.url], { env: { ARTIFACTAPI_TOKEN: '' } });
      expect(JSON.parse(ok(seen))).toEqual([]);

      expect(ok(await cli('token', 'revoke', tok.id))).toBe(`revoked token ${tok.id}\n`);
      expect((await fetch(`${srv.url}/team/x.txt`, { headers: { authorization: `Bearer ${tok.token}` } })).status).toBe(401);
      ok(await cli('perm', 'revoke', 'carol', 'team'));
      ok(await cli('user', 'remove', 'carol'));
      expect(JSON.parse(ok(await cli('user', 'list', '--json'))).map((u: { name: string }) => u.name)).toEqual(['admin']);
    });
  });

  describe('on the data dir (as gc does)', () => {
    it('a lost admin password is reset on the host; a token made there works once serve runs', async () => {
      const dataDir = join(scratchDir(), 'data');
      let srv = await spawnServe([], { dataDir, env: { ARTIFACTAPI_AUTH_ANONYMOUS: 'none' } });
      await srv.stop();
      const pw = JSON.parse(ok(await runCli(['user', 'passwd', 'admin', '--data-dir', dataDir, '--json'])));
      expect(pw.password).toMatch(/^[A-Za-z0-9_-]{24}$/);
      ok(await runCli(['user', 'add', 'ops', '--data-dir', dataDir]));
      ok(await runCli(['perm', 'grant', 'anonymous', 'pub*', 'read', '--data-dir', dataDir]));
      const tok = JSON.parse(ok(await runCli(['token', 'create', '--user', 'admin', '--data-dir', dataDir, '--json'])));
      expect(ok(await runCli(['perm', 'list', '--data-dir', dataDir]))).toMatch(/anonymous\s+pub\*\s+read/);

      srv = await spawnServe([], { dataDir, env: { ARTIFACTAPI_AUTH_ANONYMOUS: 'none' } });
      try {
        const me = await fetch(`${srv.url}/api/v1/whoami`, { headers: { authorization: `Basic ${Buffer.from(`admin:${pw.password}`).toString('base64')}` } });
        expect(await me.json()).toEqual({ user: 'admin', admin: true, tokenId: null });
        const viaToken = await fetch(`${srv.url}/api/v1/users`, { headers: { authorization: `Bearer ${tok.token}` } });
        expect(((await viaToken.json()) as { name: string }[]).map((u) => u.name)).toEqual(['admin', 'ops']);
        ok(await runCli(['repo', 'add', 'pub-files', '--format', 'generic', '--kind', 'local', '--url', srv.url], { env: { ARTIFACTAPI_TOKEN: tok.token } }));
        // the anonymous grant made on the host: pub* is readable without credentials, although auth.anonymous = none
        const missing = await fetch(`${srv.url}/pub-files/nothing`);
        expect(missing.status).toBe(404);
        expect(((await missing.json()) as { error: { code: string } }).error.code).not.toBe('REPO_NOT_FOUND');
        expect(((await (await fetch(`${srv.url}/api/v1/repositories`)).json()) as { name: string }[]).map((r) => r.name)).toEqual(['pub-files']);
      } finally {
        await srv.stop();
      }
    }, 120_000);
  });
});
