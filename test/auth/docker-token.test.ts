import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../helpers/server.js';
import { authServer, basic, bearer, type AuthTools } from './helpers.js';

const payloadOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString()) as Record<string, any>;

describe('docker token endpoint: GET /v2/token', () => {
  let srv: TestServer & AuthTools;
  beforeAll(async () => {
    srv = await authServer({ 'auth.login_slow_after': 1000 });
    await srv.addRepo({ name: 'dpub', format: 'docker', kind: 'local' });
    await srv.addRepo({ name: 'dpriv', format: 'docker', kind: 'local', anonymous: 'none' });
    await srv.user('pusher', 'pusher-pass-1', [['dpub', ['write']], ['dpriv', ['read']]]);
  });
  afterAll(async () => srv?.close());

  const token = (scope: string[], auth?: string) => fetch(`${srv.url}/v2/token?service=artifactapi&${scope.map((s) => `scope=${encodeURIComponent(s)}`).join('&')}`,
    { headers: auth ? { authorization: auth } : {} });

  it('grants each scope only what the identity may do, signed and short-lived', async () => {
    const anon = await token(['repository:dpub/app:pull,push', 'repository:dpriv/app:pull', 'repository:nosuch/app:pull']);
    expect(anon.status).toBe(200);
    expect(anon.headers.get('cache-control')).toBe('no-store');
    const a = await anon.json();
    expect(a.token).toBe(a.access_token);
    expect(a.expires_in).toBe(300);
    expect(Date.parse(a.issued_at)).toBeGreaterThan(Date.now() - 10_000);
    const pa = payloadOf(a.token);
    expect(pa).toMatchObject({ iss: 'artifactapi', sub: '', aud: 'artifactapi' });
    expect(pa.exp - pa.iat).toBe(300);
    expect(pa.access).toEqual([
      { type: 'repository', name: 'dpub/app', actions: ['pull'] },
      { type: 'repository', name: 'dpriv/app', actions: [] },
    ]);

    const user = await (await token(['repository:dpub/app:pull,push', 'repository:dpriv/app:pull,push'], basic('pusher', 'pusher-pass-1'))).json();
    expect(payloadOf(user.token)).toMatchObject({
      sub: 'pusher',
      access: [{ type: 'repository', name: 'dpub/app', actions: ['pull', 'push'] }, { type: 'repository', name: 'dpriv/app', actions: ['pull'] }],
    });
    const admin = await (await token(['repository:dpriv/app:pull,push,delete'], srv.adminAuth)).json();
    expect(payloadOf(admin.token).access).toEqual([{ type: 'repository', name: 'dpriv/app', actions: ['pull', 'push', 'delete'] }]);
  });

  it('bad credentials are 401 with the Bearer challenge and the registry error body; a forged token is refused', async () => {
    const bad = await token(['repository:dpub/app:pull'], basic('pusher', 'wrong'));
    expect(bad.status).toBe(401);
    expect(bad.headers.get('www-authenticate')).toMatch(/^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/v2\/token",service="artifactapi",error="invalid_token"$/);
    expect(await bad.json()).toEqual({ errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials', detail: null }] });

    const real = (await (await token(['repository:dpub/app:pull'])).json()).token as string;
    const [h, , s] = real.split('.');
    const forgedBody = Buffer.from(JSON.stringify({ ...payloadOf(real), sub: 'admin', access: [{ type: 'repository', name: 'dpriv/app', actions: ['pull', 'push'] }] })).toString('base64url');
    const forged = await token(['repository:dpub/app:pull'], bearer(`${h}.${forgedBody}.${s}`));
    expect(forged.status).toBe(401);
    // a real Bearer token cannot be traded for a wider one
    const trade = await token(['repository:dpriv/app:pull'], bearer(real));
    expect(trade.status).toBe(401);
  });
});
