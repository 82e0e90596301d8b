import { execa } from 'execa';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../helpers/server.js';
import { startUpstream, staticFiles, type FakeUpstream } from '../helpers/upstream.js';
import { which } from '../helpers/which.js';
import { HAVE_NPM } from '../formats/npm/npm-helpers.js';
import { Layout } from '../formats/docker/oci-layout.js';
import { skopeo, TLS } from '../formats/docker/util.js';
import { authServer, basic, bearer, npmLogin, run, type AuthTools } from './helpers.js';

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out;
}

describe('secrets never reach the log, the data dir, error messages or repo show', () => {
  let srv: TestServer & AuthTools;
  let up: FakeUpstream;
  const lines: string[] = [];
  const upstreamAuth: string[] = [];
  const PASSWORD = 'user-pass-Zq7-unique';
  const UPSTREAM_PASSWORD = 'upstream-pw-Kx9-unique';
  const COOKIE = 'session-cookie-Vb3-unique';
  let token = '';
  let npmToken = '';
  let adminPassword = '';

  beforeAll(async () => {
    const files = staticFiles({ '/x/file.txt': 'remote bytes' });
    up = await startUpstream((req, res) => {
      upstreamAuth.push(String(req.headers.authorization ?? ''));
      return files(req, res);
    });
    srv = await authServer({ 'server.log_level': 'debug', 'auth.login_slow_after': 1000 }, { logLines: lines });
    adminPassword = (await readFile(join(srv.dataDir, 'admin.password'), 'utf8')).trim();
    await srv.addRepo({ name: 'files', format: 'generic', kind: 'local' });
    await srv.addRepo({ name: 'npmr', format: 'npm', kind: 'local' });
    await srv.addRepo({ name: 'dock', format: 'docker', kind: 'local' });
    await srv.addRepo({ name: 'mirror', format: 'generic', kind: 'remote', upstream: `${up.url}/x/`, username: 'upuser', password: UPSTREAM_PASSWORD });
    await srv.user('dev', PASSWORD, [['*', ['delete']]]);
    token = (await srv.token('dev', PASSWORD)).token;
  });
  afterAll(async () => {
    await srv?.close();
    await up?.close();
  });

  /** Every secret value in every log line and every file of the data dir: none may be there. */
  async function expectNowhere(secrets: Record<string, string>): Promise<void> {
    await new Promise((r) => setTimeout(r, 200));
    const log = lines.join('\n');
    for (const [name, value] of Object.entries(secrets)) expect(log.includes(value), `${name} in the log`).toBe(false);
    // docker Bearer tokens (JWTs) the clients were given, whatever their value
    expect(log).not.toMatch(/eyJ[A-Za-z0-9_-]+\.eyJ/);
    const files = await filesUnder(srv.dataDir);
    if (srv.config.database.url.startsWith('sqlite://')) expect(files.some((f) => f.endsWith('artifactapi.db'))).toBe(true);
    for (const f of files) {
      const text = (await readFile(f)).toString('latin1');
      expect(text, f).not.toMatch(/eyJ[A-Za-z0-9_-]+\.eyJ/);
      for (const [name, value] of Object.entries(secrets)) {
        // the first-start password lives in its one file, by design; the upstream password is stored for use (never shown)
        if (name === 'adminPassword' && f.endsWith('admin.password')) continue;
        if (name === 'UPSTREAM_PASSWORD') continue;
        expect(text.includes(value), `${name} in ${f}`).toBe(false);
      }
    }
  }

  it('after a run that sends every kind of secret, none of them is in any log line or data file', async () => {
    const u = new URL(srv.url);
    u.username = 'dev';
    u.password = PASSWORD;
    expect((await fetch(`${srv.url}/files/a.txt`, { method: 'PUT', body: 'a', headers: { authorization: basic('dev', PASSWORD), cookie: `sid=${COOKIE}` } })).status).toBe(201);
    expect((await fetch(`${srv.url}/files/a.txt`, { headers: { authorization: bearer(token) } })).status).toBe(200);
    expect((await fetch(`${srv.url}/files/a.txt`, { headers: { authorization: basic('__token__', token) } })).status).toBe(200);
    // wrong password: 401, and the message names nothing it was given
    const bad = await fetch(`${srv.url}/files/a.txt`, { headers: { authorization: basic('dev', `${PASSWORD}-wrong`) } });
    expect(bad.status).toBe(401);
    expect(await bad.text()).not.toContain(PASSWORD);
    const badToken = await fetch(`${srv.url}/files/a.txt`, { headers: { authorization: bearer(`${token}x`) } });
    expect(await badToken.text()).not.toContain(token);
    // the remote uses its stored credentials
    expect((await fetch(`${srv.url}/mirror/file.txt`)).status).toBe(200);
    expect(upstreamAuth).toContain(basic('upuser', UPSTREAM_PASSWORD));
    // npm login, then logout puts the token in the URL path
    const login = await fetch(`${srv.url}/npmr/-/user/org.couchdb.user:dev`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'dev', password: PASSWORD }) });
    expect(login.status).toBe(201);
    npmToken = ((await login.json()) as { token: string }).token;
    const out = await fetch(`${srv.url}/npmr/-/user/token/${npmToken}`, { method: 'DELETE', headers: { authorization: bearer(npmToken) } });
    expect(out.status).toBe(200);
    // password change and a user made with a given password
    expect((await srv.api('PUT', '/api/v1/users/dev/password', { password: `${PASSWORD}-2` })).status).toBe(204);
    expect((await srv.api('PUT', '/api/v1/users/dev/password', { password: PASSWORD })).status).toBe(204);
    // repo show masks the upstream password
    const show = await srv.api('GET', '/api/v1/repositories/mirror');
    expect(show.json.options.password).toBe('********');
    expect(JSON.stringify(show.json)).not.toContain(UPSTREAM_PASSWORD);

    // docker: Basic credentials buy a Bearer token at /v2/token, which the registry then takes
    const issued = await fetch(`${srv.url}/v2/token?service=artifactapi&scope=repository:dock/app:pull,push`, { headers: { authorization: basic('dev', PASSWORD) } });
    expect(issued.status).toBe(200);
    const jwt = ((await issued.json()) as { token: string }).token;
    const tags = await fetch(`${srv.url}/v2/dock/app/tags/list`, { headers: { authorization: bearer(jwt) } });
    expect(tags.status).toBe(404);
    const badJwt = await fetch(`${srv.url}/v2/dock/app/tags/list`, { headers: { authorization: bearer(`${jwt}x`) } });
    expect(badJwt.status).toBe(401);
    expect(await badJwt.text()).not.toContain(jwt);
    // npm token create sends the password in its body and gets a new token back
    const created = await fetch(`${srv.url}/npmr/-/npm/v1/tokens`, {
      method: 'POST', headers: { authorization: bearer(token), 'content-type': 'application/json' }, body: JSON.stringify({ password: PASSWORD, readonly: true }),
    });
    expect(created.status).toBe(201);
    const createdToken = ((await created.json()) as { token: string }).token;
    const revoked = await fetch(`${srv.url}/npmr/-/npm/v1/tokens/token/${createdToken}`, { method: 'DELETE', headers: { authorization: bearer(token) } });
    expect(revoked.status).toBe(204);

    // a careless log call that names them is redacted too
    srv.svc.log.warn({ req: { headers: { authorization: basic('dev', PASSWORD), cookie: COOKIE } }, password: PASSWORD, body: { token } }, 'probe');
    await new Promise((r) => setTimeout(r, 200));
    const log = lines.join('\n');
    expect(log).toContain('"url":"/npmr/-/user/token/***"');
    expect(log).toContain('"url":"/npmr/-/npm/v1/tokens/token/aat_***"');
    expect(log).toMatch(/"authorization":"\[redacted\]","cookie":"\[redacted\]".*"password":"\[redacted\]".*"token":"\[redacted\]".*"msg":"probe"/);
    await expectNowhere({
      PASSWORD, UPSTREAM_PASSWORD, COOKIE, token, npmToken, adminPassword, jwt, createdToken,
      basicHeader: Buffer.from(`dev:${PASSWORD}`).toString('base64'), tokenHeader: Buffer.from(`__token__:${token}`).toString('base64'),
    });
  });

  it.skipIf(!HAVE_NPM || !which('skopeo') || !which('script'))('the real clients\' logins leave no secret behind: npm login, token create and publish; skopeo login and push', { timeout: 180_000 }, async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'secrets-clients-'));
    try {
      const registry = `${srv.url}/npmr/`;
      const userconfig = join(tmp, 'npmrc');
      await writeFile(userconfig, '');
      const env = { npm_config_globalconfig: join(tmp, 'no-global-npmrc') };
      const logged = await npmLogin({ registry, userconfig, cache: join(tmp, 'cache-login'), globalconfig: env.npm_config_globalconfig }, 'dev', PASSWORD);
      expect(logged.exitCode, logged.out).toBe(0);
      const loginToken = /:_authToken=(aat_[A-Za-z0-9_-]+)/.exec(await readFile(userconfig, 'utf8'))?.[1] ?? '';
      expect(loginToken).toMatch(/^aat_/);
      const npm = (args: string[], cwd = tmp) => execa('npm', [...args, '--userconfig', userconfig, '--cache', join(tmp, 'cache'), '--registry', registry, '--no-audit', '--no-fund', '--loglevel=warn', '--update-notifier=false'],
        { cwd, reject: false, env, extendEnv: true, timeout: 120_000 });
      const made = await npm(['token', 'create', '--password', PASSWORD, '--json']);
      expect(made.exitCode, made.stderr).toBe(0);
      const cliToken = (JSON.parse(made.stdout) as { token: string }).token;
      const pkg = join(tmp, 'pkg');
      await mkdir(pkg);
      await writeFile(join(pkg, 'package.json'), JSON.stringify({ name: 'secret-lib', version: '1.0.0', license: 'MIT' }));
      const pub = await npm(['publish'], pkg);
      expect(pub.exitCode, pub.stderr).toBe(0);

      const authfile = join(tmp, 'auth.json');
      await run('skopeo', ['login', '--tls-verify=false', '--authfile', authfile, '-u', 'dev', '-p', PASSWORD, srv.host]);
      const l = new Layout(join(tmp, 'img'));
      await l.write({ v1: await l.image({ layers: 1, layerSize: 1000 }) });
      await skopeo('copy', ...TLS, '--authfile', authfile, `oci:${l.dir}:v1`, `docker://${srv.host}/dock/app:v1`);
      const pushed = await srv.api('GET', '/api/v1/audit?user=dev&repo=dock&limit=1');
      expect(pushed.json.entries[0]).toMatchObject({ actor: 'dev', repo: 'dock', action: 'write', outcome: 'ok' });

      await expectNowhere({
        PASSWORD, loginToken, cliToken, basicHeader: Buffer.from(`dev:${PASSWORD}`).toString('base64'),
        tokenHeader: Buffer.from(`__token__:${token}`).toString('base64'),
      });
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
