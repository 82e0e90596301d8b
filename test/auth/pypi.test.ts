import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDist, pipInstall, PYTHON, pyEval, twineUpload, which, type Dist } from '../formats/pypi/clients.js';
import type { TestServer } from '../helpers/server.js';
import { authServer, basic, type AuthTools } from './helpers.js';

describe.skipIf(!PYTHON || !which('twine'))('pypi with auth on (twine, pip)', () => {
  let srv: TestServer & AuthTools;
  let dep: Dist;
  let app: Dist;
  let token: string;
  beforeAll(async () => {
    srv = await authServer({ 'auth.login_slow_after': 1000 });
    await srv.addRepo({ name: 'py', format: 'pypi', kind: 'local', anonymous: 'none' });
    await srv.user('dev', 'dev-password-1', [['py', ['write']]]);
    await srv.user('looker', 'looker-password-1', [['py', ['read']]]);
    token = (await srv.token('dev', 'dev-password-1')).token;
    [dep, app] = await Promise.all([buildDist('demo-dep').then((d) => d.wheel), buildDist('demo-app').then((d) => d.wheel)]);
  }, 120_000);
  afterAll(async () => srv?.close());

  it('twine uploads with __token__ + an API token, and with user + password', async () => {
    const withToken = await twineUpload(`${srv.url}/py/`, [dep.path], { user: '__token__', password: token });
    expect(withToken.code, withToken.stdout + withToken.stderr).toBe(0);
    const withPassword = await twineUpload(`${srv.url}/py/`, [app.path], { user: 'dev', password: 'dev-password-1' });
    expect(withPassword.code, withPassword.stdout + withPassword.stderr).toBe(0);
    const listed = await fetch(`${srv.url}/py/simple/`, { headers: { authorization: basic('dev', 'dev-password-1') } });
    expect(await listed.text()).toMatch(/demo-app[\s\S]*demo-dep|demo-dep[\s\S]*demo-app/);
  });

  it('twine with a wrong password is 401, with a read-only user 403', async () => {
    const bad = await twineUpload(`${srv.url}/py/`, [dep.path], { user: 'dev', password: 'wrong-password' });
    expect(bad.code).not.toBe(0);
    expect(bad.stdout + bad.stderr).toMatch(/401 Unauthorized/);
    const ro = await twineUpload(`${srv.url}/py/`, [dep.path], { user: 'looker', password: 'looker-password-1' });
    expect(ro.code).not.toBe(0);
    expect(ro.stdout + ro.stderr).toMatch(/403 Forbidden/);
  });

  it('a write without credentials is 401 with WWW-Authenticate: Basic', async () => {
    const res = await fetch(`${srv.url}/py/`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: '--x--\r\n' });
    // the repo is private: anonymous sees no repo at all
    expect(res.status).toBe(404);
    const pub = await authServer();
    try {
      await pub.addRepo({ name: 'open', format: 'pypi', kind: 'local' });
      const r = await fetch(`${pub.url}/open/`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: '--x--\r\n' });
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe('Basic realm="artifactapi", charset="UTF-8"');
      expect(await r.json()).toEqual({ error: { code: 'UNAUTHORIZED', message: 'authentication required' } });
    } finally {
      await pub.close();
    }
  });

  it('pip installs from the private repo with credentials in the index URL, and not without', async () => {
    const u = new URL(`${srv.url}/py/simple/`);
    u.username = 'looker';
    u.password = 'looker-password-1';
    const ok = await pipInstall(u.toString(), ['demo-app']);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(await pyEval(ok.target, 'import demo_app; print(demo_app.APP)')).toBe('demo-app sees demo-dep 1.0');

    u.username = '__token__';
    u.password = token;
    expect((await pipInstall(u.toString(), ['demo-dep'])).code).toBe(0);

    const anon = await pipInstall(`${srv.url}/py/simple/`, ['demo-app']);
    expect(anon.code).not.toBe(0);
    expect(anon.stdout + anon.stderr).toMatch(/No matching distribution found for demo-app|404/);
  });
});
