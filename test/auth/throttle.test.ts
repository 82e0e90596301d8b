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
