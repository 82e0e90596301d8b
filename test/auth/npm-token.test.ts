import { execa } from 'execa';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../helpers/server.js';
import { HAVE_NPM } from '../formats/npm/npm-helpers.js';
import { authServer, bearer, type AuthTools } from './helpers.js';

/** `npm token create|list|revoke` against an npm repo: npm's /-/npm/v1/tokens over our API tokens. */
describe.skipIf(!HAVE_NPM)('npm token create, list and revoke', () => {
  let srv: TestServer & AuthTools;
  let root: string;
  let registry: string;
  let runs = 0;

  /** npm with its own userconfig (holding `token` as the registry's _authToken) and a fresh cache. */
  const npm = async (token: string, args: string[], cwd?: string) => {
    const cfg = join(root, `npmrc-${++runs}`);
    await writeFile(cfg, `${registry.replace(/^http:/, '')}:_authToken=${token}\n`);
    return execa('npm', [
      ...args, '--userconfig', cfg, '--cache', join(root, `cache-${runs}`), '--registry', registry,
      '--no-audit', '--no-fund', '--loglevel=warn', '--update-notifier=false',
    ], { cwd: cwd ?? root, reject: false, env: { npm_config_globalconfig: join(root, 'no-global-npmrc') }, extendEnv: true, timeout: 120_000 });
  };
  const whoami = (token: string) => fetch(`${srv.url}/npm-team/-/whoami`, { headers: { authorization: bearer(token) } });

  beforeAll(async () => {
    srv = await authServer({ 'auth.login_slow_after': 1000 });
    await srv.addRepo({ name: 'npm-team', format: 'npm', kind: 'local', anonymous: 'none' });
    await srv.user('dev', 'dev-password-1', [['npm-team', ['write']]]);
    root = await mkdtemp(join(tmpdir(), 'npm-token-'));
    registry = `${srv.url}/npm-team/`;
  });
  afterAll(async () => {
    await srv?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('creates a token (read-write and read-only), lists them, revokes by key and by value', async () => {
    const { id: loginId, token: login } = await srv.token('dev', 'dev-password-1', { description: 'laptop' });

    const rw = await npm(login, ['token', 'create', '--password', 'dev-password-1', '--name', 'ci', '--json']);
    expect(rw.exitCode, rw.stderr).toBe(0);
    const made = JSON.parse(rw.stdout);
    expect(made).toMatchObject({ token: expect.stringMatching(/^aat_[A-Za-z0-9_-]{32}$/), name: 'ci', readonly: false, cidr_whitelist: null });
    const who = await whoami(made.token);
    expect(who.status).toBe(200);
    expect(await who.json()).toEqual({ username: 'dev' });

    // npm 11 asks for a read-only token with the granular-token permission.
    const ro = await npm(login, ['token', 'create', '--password', 'dev-password-1', '--packages-and-scopes-permission', 'read-only', '--json']);
    expect(ro.exitCode, ro.stderr).toBe(0);
    const readOnly = JSON.parse(ro.stdout);
    expect(readOnly).toMatchObject({ readonly: true, name: 'npm token create on npm-team' });
    const pkg = join(root, 'pkg');
    await mkdir(pkg, { recursive: true });
    await writeFile(join(pkg, 'package.json'), JSON.stringify({ name: 'team-lib', version: '1.0.0', license: 'MIT' }));
    const pub = await npm(readOnly.token, ['publish'], pkg);
    expect(pub.exitCode).not.toBe(0);
    expect(pub.stderr).toMatch(/E403/);
    expect(pub.stderr).toMatch(/dev may not write in npm-team/);

    const api = (await srv.api('GET', '/api/v1/tokens?user=dev')).json as { id: string; description: string; actions: string[] | null }[];
    expect(api.map((t) => [t.description, t.actions])).toEqual([['laptop', null], ['ci', null], ['npm token create on npm-team', ['read']]]);
    const [, ciId, roId] = api.map((t) => t.id);

    const list = await npm(login, ['token', 'list', '--json']);
    expect(list.exitCode, list.stderr).toBe(0);
    const listed = JSON.parse(list.stdout) as Record<string, unknown>[];
    expect(listed.map((t) => [t.key, t.token, t.name, t.readonly])).toEqual([
      [loginId, 'aat_', 'laptop', false], [ciId, 'aat_', 'ci', false], [roId, 'aat_', 'npm token create on npm-team', true],
    ]);
    expect(JSON.stringify(listed)).not.toContain(made.token);

    // By the key (npm finds the whole key from a prefix of it in the listing), then by the whole token value.
    const byKey = await npm(login, ['token', 'revoke', ciId.slice(0, 8)]);
    expect(byKey.exitCode, byKey.stderr).toBe(0);
    expect(byKey.stdout.trim()).toBe('Removed 1 token');
    expect((await whoami(made.token)).status).toBe(401);
    const byValue = await npm(login, ['token', 'revoke', readOnly.token]);
    expect(byValue.exitCode, byValue.stderr).toBe(0);
    expect(byValue.stdout.trim()).toBe('Removed 1 token');
    expect((await whoami(readOnly.token)).status).toBe(401);
    expect(((await srv.api('GET', '/api/v1/tokens?user=dev')).json as { id: string }[]).map((t) => t.id)).toEqual([loginId]);

    const audit = (await srv.api('GET', '/api/v1/audit?user=dev&limit=10')).json.entries as Record<string, unknown>[];
    expect(audit.filter((e) => e.format === 'npm' && String(e.subject).startsWith('token')).map((e) => [e.action, e.subject, e.outcome])).toEqual([
      ['delete', 'token', 'ok'], ['delete', `token:${ciId}`, 'ok'], ['write', 'token', 'ok'], ['write', 'token', 'ok'],
    ]);
  });

  it('a wrong password creates nothing (E401); an address restriction is refused (E400), not dropped', async () => {
    const { token } = await srv.token('dev', 'dev-password-1');
    const before = (await srv.api('GET', '/api/v1/tokens?user=dev')).json.length;
    const bad = await npm(token, ['token', 'create', '--password', 'not-the-password']);
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toMatch(/E401/);
    const cidr = await npm(token, ['token', 'create', '--password', 'dev-password-1', '--cidr', '10.0.0.0/8']);
    expect(cidr.exitCode).not.toBe(0);
    expect(cidr.stderr).toMatch(/E400/);
    expect(cidr.stderr).toMatch(/cannot restrict a token by cidr_whitelist/);
    expect((await srv.api('GET', '/api/v1/tokens?user=dev')).json.length).toBe(before);

    // npm 10 (npm-profile's createToken) sends `readonly` and an empty address list.
    const v10 = await fetch(`${registry}-/npm/v1/tokens`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: bearer(token) },
      body: JSON.stringify({ password: 'dev-password-1', readonly: true, cidr_whitelist: [] }),
    });
    expect(v10.status).toBe(201);
    expect(await v10.json()).toMatchObject({ token: expect.stringMatching(/^aat_/), readonly: true, cidr_whitelist: null });

    const res = await fetch(`${registry}-/npm/v1/tokens`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ password: 'dev-password-1' }) });
    expect(res.status).toBe(401);
    // (the repo is private: to a caller without credentials it answers as a missing repo would, in the default shape)
    expect(await res.json()).toEqual({ error: { code: 'UNAUTHORIZED', message: 'not logged in' } });
  });
});
