import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { which } from '../helpers/which.js';
import type { TestServer } from '../helpers/server.js';
import { authServer, run, type AuthTools } from './helpers.js';

/** curl from a chosen loopback source address: status, Retry-After, elapsed ms. */
async function from(addr: string, args: string[]): Promise<{ status: number; retryAfter?: string; ms: number; body: string }> {
  const t = Date.now();
  const { stdout } = await run('curl', ['-s', '--interface', addr, '-D', '-', ...args]);
  const [head, body] = stdout.split('\r\n\r\n');
  return { status: Number(head.split(' ')[1]), retryAfter: /\r\nretry-after: (\d+)/i.exec(head)?.[1], ms: Date.now() - t, body };
}

describe.skipIf(!which('curl'))('failed logins are slowed, then refused with 429, per client address', () => {
  let srv: TestServer & AuthTools;
  beforeAll(async () => {
    srv = await authServer({ 'auth.login_slow_after': 2, 'auth.login_max_failures': 5, 'auth.login_window': '1m' });
    await srv.addRepo({ name: 'files', format: 'generic', kind: 'local', anonymous: 'none' });
    await srv.user('alice', 'alice-password-1', [['files', ['read']]]);
  });
  afterAll(async () => srv?.close());

  it('a guesser from one address is held back and then refused; the right password from another address still works', { timeout: 30_000 }, async () => {
    const url = `${srv.url}/files/`;
    const tries = [];
    for (let i = 0; i < 5; i++) tries.push(await from('127.0.0.1', ['-u', `alice:guess-${i}`, url]));
    expect(tries.map((t) => t.status)).toEqual([401, 401, 401, 401, 401]);
    // after slow_after (2) failures each answer waits longer: 100, 200, 400 ms
    expect(tries[2].ms).toBeGreaterThanOrEqual(100);
    expect(tries[4].ms).toBeGreaterThanOrEqual(400);

    const refused = await from('127.0.0.1', ['-u', 'alice:guess-5', url]);
    expect(refused.status).toBe(429);
    // until the oldest counted failure leaves the 1 min window
    expect(Number(refused.retryAfter)).toBeGreaterThan(0);
    expect(Number(refused.retryAfter)).toBeLessThanOrEqual(60);
    expect(JSON.parse(refused.body)).toEqual({ error: { code: 'TOOMANYREQUESTS', message: 'too many failed logins from this address; try again later' } });
    // even the right password, from the guesser's address
    expect((await from('127.0.0.1', ['-u', 'alice:alice-password-1', url])).status).toBe(429);
    // anonymous requests are not logins: they still get their ordinary answer
    expect((await from('127.0.0.1', [`${srv.url}/health`])).status).toBe(200);

    const other = await from('127.0.0.2', ['-u', 'alice:alice-password-1', `${url}nothing-here`]);
    expect(other.status).toBe(404);
    expect(JSON.parse(other.body).error.code).toBe('NOT_FOUND');
    expect(other.ms).toBeLessThan(2000);
  });
});

/** The throttle counts by the client address the audit trail records: X-Forwarded-For only from a proxy server.trust_proxy names. */
describe.skipIf(!which('curl'))('the login throttle and server.trust_proxy', () => {
  const fail = (srv: TestServer, addr: string, xff?: string) =>
    from(addr, [...(xff ? ['-H', `X-Forwarded-For: ${xff}`] : []), '-u', 'alice:wrong-guess', `${srv.url}/files/`]);
  const login = (srv: TestServer, addr: string, xff?: string) =>
    from(addr, [...(xff ? ['-H', `X-Forwarded-For: ${xff}`] : []), '-u', 'alice:alice-password-1', `${srv.url}/files/nothing-here`]);
  const server = async (trust: unknown) => {
    const srv = await authServer({ 'server.trust_proxy': trust, 'auth.login_slow_after': 100, 'auth.login_max_failures': 3, 'auth.login_window': '1m' });
    await srv.addRepo({ name: 'files', format: 'generic', kind: 'local', anonymous: 'none' });
    await srv.user('alice', 'alice-password-1', [['files', ['read']]]);
    return srv;
  };

  it('trust_proxy off: a forged X-Forwarded-For does not get a throttled address out of its 429', async () => {
    const srv = await server(false);
    try {
      for (const xff of [undefined, '10.0.0.1', '10.0.0.2']) expect((await fail(srv, '127.0.0.3', xff)).status).toBe(401);
      for (const xff of [undefined, '10.0.0.9', '127.0.0.4']) expect((await login(srv, '127.0.0.3', xff)).status).toBe(429);
      expect((await login(srv, '127.0.0.4')).status).toBe(404);
    } finally {
      await srv.close();
    }
  });

  it('trust_proxy = the loopback proxy: each forwarded address is throttled on its own', async () => {
    const srv = await server('127.0.0.1');
    try {
      for (let i = 0; i < 3; i++) expect((await fail(srv, '127.0.0.1', '10.0.0.1')).status).toBe(401);
      const refused = await login(srv, '127.0.0.1', '10.0.0.1');
      expect(refused.status).toBe(429);
      expect(JSON.parse(refused.body)).toEqual({ error: { code: 'TOOMANYREQUESTS', message: 'too many failed logins from this address; try again later' } });
      // Another client behind the same proxy: its own count, and the right password works.
      expect((await fail(srv, '127.0.0.1', '10.0.0.2')).status).toBe(401);
      expect((await login(srv, '127.0.0.1', '10.0.0.2')).status).toBe(404);
      // A peer that is not the trusted proxy is counted by its own address, whatever it forwards.
      expect((await login(srv, '127.0.0.5', '10.0.0.1')).status).toBe(404);
    } finally {
      await srv.close();
    }
  });
});
