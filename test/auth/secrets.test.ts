import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../helpers/server.js';
import { startUpstream, staticFiles, type FakeUpstream } from '../helpers/upstream.js';
import { authServer, basic, bearer, type AuthTools } from './helpers.js';

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
    await srv.addRepo({ name: 'mirror', format: 'generic', kind: 'remote', upstream: `${up.url}/x/`, username: 'upuser', password: UPSTREAM_PASSWORD });
    await srv.user('dev', PASSWORD, [['*', ['delete']]]);
    token = (await srv.token('dev', PASSWORD)).token;
  });
  afterAll(async () => {
    await srv?.close();
    await up?.close();
  });

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

    // a careless log call that names them is redacted too
    srv.svc.log.warn({ req: { headers: { authorization: basic('dev', PASSWORD), cookie: COOKIE } }, password: PASSWORD, body: { token } }, 'probe');
    await new Promise((r) => setTimeout(r, 200));
    const secrets = {
      PASSWORD, UPSTREAM_PASSWORD, COOKIE, token, npmToken, adminPassword,
      basicHeader: Buffer.from(`dev:${PASSWORD}`).toString('base64'), tokenHeader: Buffer.from(`__token__:${token}`).toString('base64'),
    };
    const log = lines.join('\n');
    expect(lines.length).toBeGreaterThan(10);
    expect(log).toContain('"url":"/npmr/-/user/token/***"');
    expect(log).toMatch(/"authorization":"\[redacted\]","cookie":"\[redacted\]".*"password":"\[redacted\]".*"token":"\[redacted\]".*"msg":"probe"/);
    for (const [name, value] of Object.entries(secrets)) expect(log.includes(value), `${name} in the log`).toBe(false);

    const files = await filesUnder(srv.dataDir);
    if (srv.config.database.url.startsWith('sqlite://')) expect(files.some((f) => f.endsWith('artifactapi.db'))).toBe(true);
    for (const f of files) {
      const text = (await readFile(f)).toString('latin1');
      for (const [name, value] of Object.entries(secrets)) {
        // the first-start password lives in its one file, by design; the upstream password is stored for use (never shown)
        if (name === 'adminPassword' && f.endsWith('admin.password')) continue;
        if (name === 'UPSTREAM_PASSWORD') continue;
        expect(text.includes(value), `${name} in ${f}`).toBe(false);
      }
    }
  });
});
