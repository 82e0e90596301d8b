import { execa } from 'execa';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../helpers/server.js';
import { HAVE_NPM } from '../formats/npm/npm-helpers.js';
import { authServer, bearer, npmLogin, type AuthTools } from './helpers.js';

describe.skipIf(!HAVE_NPM)('npm with auth on (login, whoami, publish, logout)', () => {
  let srv: TestServer & AuthTools;
  let root: string;
  let registry: string;
  let userconfig: string;
  let runs = 0;

  /** npm with this test's own userconfig (where `npm login` writes its token) and a fresh cache. */
  const npm = (args: string[], o: { cwd?: string; input?: string; userconfig?: string } = {}) => execa('npm', [
    ...args, '--userconfig', o.userconfig ?? userconfig, '--cache', join(root, `cache-${++runs}`), '--registry', registry,
    '--no-audit', '--no-fund', '--loglevel=warn', '--update-notifier=false',
  ], { cwd: o.cwd ?? root, reject: false, input: o.input, env: { npm_config_globalconfig: join(root, 'no-global-npmrc') }, extendEnv: true, timeout: 120_000 });

  const login = (user: string, password: string, cfg = userconfig) =>
    npmLogin({ registry, userconfig: cfg, cache: join(root, `cache-${++runs}`), globalconfig: join(root, 'no-global-npmrc') }, user, password);

  const pkg = async (name: string, version: string) => {
    const d = join(root, 'src', `${name}-${version}`);
    await mkdir(d, { recursive: true });
    await writeFile(join(d, 'package.json'), JSON.stringify({ name, version, main: 'index.js', license: 'MIT' }));
    await writeFile(join(d, 'index.js'), `module.exports = ${JSON.stringify(version)};\n`);
    return d;
  };

  beforeAll(async () => {
    srv = await authServer({ 'auth.login_slow_after': 1000 });
    await srv.addRepo({ name: 'npm-team', format: 'npm', kind: 'local', anonymous: 'none' });
    await srv.user('dev', 'dev-password-1', [['npm-team', ['write']]]);
    await srv.user('looker', 'looker-password-1', [['npm-team', ['read']]]);
    root = await mkdtemp(join(tmpdir(), 'npm-auth-'));
    registry = `${srv.url}/npm-team/`;
    userconfig = join(root, 'npmrc');
    await writeFile(userconfig, '');
  });
  afterAll(async () => {
    await srv?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('npm login (legacy CouchDB PUT) stores a token; whoami, publish and install use it; logout revokes it', async () => {
    const done = await login('dev', 'dev-password-1');
    expect(done.exitCode, done.out).toBe(0);
    expect(done.out).toMatch(/Logged in on http:\/\/127\.0\.0\.1:\d+\/npm-team\//);
    const rc = await readFile(userconfig, 'utf8');
    const token = /:_authToken=(aat_[A-Za-z0-9_-]+)/.exec(rc)?.[1];
    expect(token).toBeDefined();

    const who = await npm(['whoami']);
    expect(who.exitCode, who.stderr).toBe(0);
    expect(who.stdout.trim()).toBe('dev');

    const pub = await npm(['publish'], { cwd: await pkg('team-lib', '1.0.0') });
    expect(pub.exitCode, pub.stderr).toBe(0);
    const view = await npm(['view', 'team-lib', 'version']);
    expect(view.stdout.trim()).toBe('1.0.0');

    const logout = await npm(['logout']);
    expect(logout.exitCode, logout.stderr).toBe(0);
    // the server revoked it: the token is refused even if a client kept it
    const after = await fetch(`${srv.url}/npm-team/-/whoami`, { headers: { authorization: bearer(token!) } });
    expect(after.status).toBe(401);
    expect(await after.json()).toEqual({ error: { code: 'UNAUTHORIZED', message: 'bad credentials' } });
    const tokens = await srv.api('GET', '/api/v1/tokens?user=dev');
    expect(tokens.json).toEqual([]);
  });

  it('npm login with a wrong password fails with E401; whoami without a token is E401', async () => {
    const cfg = join(root, 'npmrc-bad');
    await writeFile(cfg, '');
    const bad = await login('dev', 'not-the-password', cfg);
    expect(bad.exitCode).not.toBe(0);
    expect(bad.out).toMatch(/E401/);
    expect(await readFile(cfg, 'utf8')).not.toMatch(/_authToken/);
    const who = await npm(['whoami'], { userconfig: cfg });
    expect(who.exitCode).not.toBe(0);
    expect(who.stderr).toMatch(/E401|ENEEDAUTH/);
  });

  it('publish with a read-only token is E403 with npm\'s error body; a bad token is E401', async () => {
    const { token } = await srv.token('looker', 'looker-password-1');
    const cfg = join(root, 'npmrc-ro');
    await writeFile(cfg, `${registry.replace(/^http:/, '')}:_authToken=${token}\n`);
    const pub = await npm(['publish'], { cwd: await pkg('team-lib', '2.0.0'), userconfig: cfg });
    expect(pub.exitCode).not.toBe(0);
    expect(pub.stderr).toMatch(/E403/);
    expect(pub.stderr).toMatch(/looker may not write in npm-team/);
    const res = await fetch(`${srv.url}/npm-team/team-lib`, { method: 'PUT', headers: { authorization: bearer(token), 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: 'looker may not write in npm-team' });

    const badCfg = join(root, 'npmrc-badtoken');
    await writeFile(badCfg, `${registry.replace(/^http:/, '')}:_authToken=aat_forged\n`);
    const bad = await npm(['publish'], { cwd: await pkg('team-lib', '3.0.0'), userconfig: badCfg });
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toMatch(/E401/);
    // the read-only user still installs
    const view = await npm(['view', 'team-lib', 'version'], { userconfig: cfg });
    expect(view.stdout.trim()).toBe('1.0.0');
  });
});
