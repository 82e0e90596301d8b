import { stat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { which } from '../helpers/which.js';
import { authServer, basic, bearer, run, type AuthTools } from './helpers.js';
import type { TestServer } from '../helpers/server.js';

const HAVE_CURL = which('curl');

/** curl -i: status, lower-cased headers, body. */
async function curl(args: string[]): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const { stdout } = await run('curl', ['-s', '-i', ...args], { maxBuffer: 1 << 24 });
  const at = stdout.indexOf('\r\n\r\n');
  const [statusLine, ...lines] = stdout.slice(0, at).split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const c = l.indexOf(':');
    headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body: stdout.slice(at + 4) };
}

const UNAUTHORIZED = { error: { code: 'UNAUTHORIZED', message: 'authentication required' } };
const BAD_CREDENTIALS = { error: { code: 'UNAUTHORIZED', message: 'bad credentials' } };
const CHALLENGE = 'Basic realm="artifactapi", charset="UTF-8"';

describe.skipIf(!HAVE_CURL)('generic repos with auth on (curl)', () => {
  let srv: TestServer & AuthTools;
  beforeEach(async () => {
    // Throttling has its own test (throttle.test.ts): here bad logins are not slowed.
    srv = await authServer({ 'auth.login_slow_after': 1000, 'auth.login_max_failures': 1000 });
    await srv.addRepo({ name: 'pub', format: 'generic', kind: 'local' });
    await srv.addRepo({ name: 'priv', format: 'generic', kind: 'local', anonymous: 'none' });
    await srv.user('reader', 'reader-pass-1', [['pub', ['read']]]);
    await srv.user('writer', 'writer-pass-1', [['pub', ['write']], ['priv', ['write']]]);
  });
  afterEach(async () => srv.close());

  it('first start made admin with a random password in data_dir/admin.password, mode 0600', async () => {
    const file = join(srv.dataDir, 'admin.password');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const password = (await readFile(file, 'utf8')).trim();
    expect(password.length).toBeGreaterThanOrEqual(20);
    const me = await srv.api('GET', '/api/v1/whoami', undefined, basic('admin', password));
    expect(me).toMatchObject({ status: 200, json: { user: 'admin', admin: true, tokenId: null } });
    expect((await stat(join(srv.dataDir, 'token.key'))).mode & 0o777).toBe(0o600);
  });

  it('anonymous reads a public repo; a write without credentials is 401 with the Basic challenge', async () => {
    const put = await curl(['-X', 'PUT', '--data-binary', 'hello', `${srv.url}/pub/a.txt`]);
    expect(put.status).toBe(401);
    expect(put.headers['www-authenticate']).toBe(CHALLENGE);
    expect(JSON.parse(put.body)).toEqual(UNAUTHORIZED);

    const ok = await curl(['-u', 'writer:writer-pass-1', '-X', 'PUT', '--data-binary', 'hello', `${srv.url}/pub/a.txt`]);
    expect(ok.status).toBe(201);
    const get = await curl([`${srv.url}/pub/a.txt`]);
    expect(get.status).toBe(200);
    expect(get.body).toBe('hello');
  });

  it('good credentials without the right are 403; bad ones are 401, on any path', async () => {
    const denied = await curl(['-u', 'reader:reader-pass-1', '-X', 'PUT', '--data-binary', 'x', `${srv.url}/pub/b.txt`]);
    expect(denied.status).toBe(403);
    expect(JSON.parse(denied.body)).toEqual({ error: { code: 'DENIED', message: 'reader may not write in pub' } });
    expect(denied.headers['www-authenticate']).toBeUndefined();

    for (const url of [`${srv.url}/pub/b.txt`, `${srv.url}/priv/b.txt`, `${srv.url}/no-such-repo/b.txt`]) {
      const bad = await curl(['-u', 'reader:wrong-password', url]);
      expect(bad.status, url).toBe(401);
      expect(bad.headers['www-authenticate']).toBe(CHALLENGE);
      expect(JSON.parse(bad.body)).toEqual(BAD_CREDENTIALS);
      const nobody = await curl(['-u', 'nobody:wrong-password', url]);
      expect(JSON.parse(nobody.body)).toEqual(BAD_CREDENTIALS);
      const badToken = await curl(['-H', 'Authorization: Bearer aat_not-a-real-token', url]);
      expect(badToken.status).toBe(401);
      expect(JSON.parse(badToken.body)).toEqual(BAD_CREDENTIALS);
    }
  });

  it('Bearer tokens and user:TOKEN work; a revoked token is refused at once', async () => {
    const t = await srv.token('writer', 'writer-pass-1');
    expect(t.token).toMatch(/^aat_[A-Za-z0-9_-]{32}$/);
    expect((await curl(['-H', `Authorization: ${bearer(t.token)}`, '-X', 'PUT', '--data-binary', 'one', `${srv.url}/priv/one.txt`])).status).toBe(201);
    expect((await curl(['-u', `writer:${t.token}`, `${srv.url}/priv/one.txt`])).body).toBe('one');
    expect((await curl(['-u', `__token__:${t.token}`, `${srv.url}/priv/one.txt`])).body).toBe('one');
    // someone else's name with this token: refused
    expect((await curl(['-u', `reader:${t.token}`, `${srv.url}/priv/one.txt`])).status).toBe(401);

    expect((await srv.api('DELETE', `/api/v1/tokens/${t.id}`, undefined, basic('writer', 'writer-pass-1'))).status).toBe(204);
    const after = await curl(['-H', `Authorization: ${bearer(t.token)}`, `${srv.url}/priv/one.txt`]);
    expect(after.status).toBe(401);
    expect(JSON.parse(after.body)).toEqual(BAD_CREDENTIALS);
  });

  it('a token narrowed to repos and actions does only that; an expired one is refused', async () => {
    const ro = await srv.token('writer', 'writer-pass-1', { repos: ['priv'], actions: ['read'] });
    expect((await curl(['-H', `Authorization: ${bearer(ro.token)}`, '-X', 'PUT', '--data-binary', 'x', `${srv.url}/priv/x.txt`])).status).toBe(403);
    expect((await curl(['-u', 'writer:writer-pass-1', '-X', 'PUT', '--data-binary', 'x', `${srv.url}/priv/x.txt`])).status).toBe(201);
    expect((await curl(['-H', `Authorization: ${bearer(ro.token)}`, `${srv.url}/priv/x.txt`])).body).toBe('x');
    // outside its repos the token is worth what anonymous is: pub reads, no writes
    expect((await curl(['-H', `Authorization: ${bearer(ro.token)}`, '-X', 'PUT', '--data-binary', 'x', `${srv.url}/pub/x.txt`])).status).toBe(403);

    const hour = await srv.token('writer', 'writer-pass-1', { expires: '1h' });
    const listed = (await srv.api('GET', '/api/v1/tokens?user=writer')).json as { id: string; expiresAt: string | null }[];
    expect(Date.parse(listed.find((t) => t.id === hour.id)!.expiresAt!) - Date.now()).toBeGreaterThan(3500_000);
    expect((await curl(['-H', `Authorization: ${bearer(hour.token)}`, `${srv.url}/priv/x.txt`])).status).toBe(200);
    // one whose expiry has passed (made on the store: the API refuses a past date)
    const gone = await srv.svc.auth.createToken('writer', { expiresAt: Date.now() - 1000 });
    const expired = await curl(['-H', `Authorization: ${bearer(gone.secret)}`, `${srv.url}/priv/x.txt`]);
    expect(expired.status).toBe(401);
    expect(JSON.parse(expired.body)).toEqual(BAD_CREDENTIALS);
    expect((await srv.api('POST', '/api/v1/tokens', { expires: '2020-01-01T00:00:00Z' }, basic('writer', 'writer-pass-1'))).status).toBe(400);
  });

  it('a private repo answers an outsider exactly as a missing repo does', async () => {
    await curl(['-u', 'writer:writer-pass-1', '-X', 'PUT', '--data-binary', 'secret', `${srv.url}/priv/s.txt`]);
    const strip = (r: Awaited<ReturnType<typeof curl>>) => {
      const { date: _d, 'keep-alive': _k, connection: _c, ...h } = r.headers;
      return { status: r.status, headers: h, body: r.body };
    };
    const asks = async () => ({
      anonGet: strip(await curl([`${srv.url}/priv/s.txt`])),
      anonPut: strip(await curl(['-X', 'PUT', '--data-binary', 'x', `${srv.url}/priv/s.txt`])),
      readerGet: strip(await curl(['-u', 'reader:reader-pass-1', `${srv.url}/priv/s.txt`])),
      readerDelete: strip(await curl(['-u', 'reader:reader-pass-1', '-X', 'DELETE', `${srv.url}/priv/s.txt`])),
      show: strip(await curl(['-u', 'reader:reader-pass-1', `${srv.url}/api/v1/repositories/priv`])),
    });
    const hidden = await asks();
    expect(hidden.anonGet.status).toBe(404);
    expect(JSON.parse(hidden.anonGet.body)).toEqual({ error: { code: 'REPO_NOT_FOUND', message: 'no repository named "priv"' } });
    expect((await srv.api('DELETE', '/api/v1/repositories/priv')).status).toBe(204);
    expect(await asks()).toEqual(hidden);
  });

  it('listings show only readable repos; the management API needs admin (401 without credentials, 403 without the right)', async () => {
    const names = async (auth: string | null) => ((await srv.api('GET', '/api/v1/repositories', undefined, auth)).json as { name: string }[]).map((r) => r.name);
    expect(await names(null)).toEqual(['pub']);
    expect(await names(basic('reader', 'reader-pass-1'))).toEqual(['pub']);
    expect(await names(basic('writer', 'writer-pass-1'))).toEqual(['priv', 'pub']);
    expect(await names(srv.adminAuth)).toEqual(['priv', 'pub']);

    const anon = await srv.api('POST', '/api/v1/repositories', { name: 'x', format: 'generic', kind: 'local' }, null);
    expect(anon.status).toBe(401);
    expect(anon.headers.get('www-authenticate')).toBe(CHALLENGE);
    expect(anon.json).toEqual(UNAUTHORIZED);
    const writer = await srv.api('POST', '/api/v1/repositories', { name: 'x', format: 'generic', kind: 'local' }, basic('writer', 'writer-pass-1'));
    expect(writer).toMatchObject({ status: 403, json: { error: { code: 'DENIED', message: 'this needs an admin' } } });
    expect((await srv.api('GET', '/api/v1/users', undefined, basic('writer', 'writer-pass-1'))).status).toBe(403);
    expect((await srv.api('DELETE', '/api/v1/repositories/pub', undefined, null)).status).toBe(401);
    expect((await srv.api('GET', '/api/v1/repositories/pub', undefined, null)).status).toBe(200);
  });

  it('a grant on a virtual repo covers reading its members through it, not directly', async () => {
    await curl(['-u', 'writer:writer-pass-1', '-X', 'PUT', '--data-binary', 'inside', `${srv.url}/priv/v.txt`]);
    await srv.addRepo({ name: 'team', format: 'generic', kind: 'virtual', members: ['priv'], anonymous: 'none' });
    await srv.user('viewer', 'viewer-pass-1', [['team', ['read']]]);
    const via = await curl(['-u', 'viewer:viewer-pass-1', `${srv.url}/team/v.txt`]);
    expect(via.status).toBe(200);
    expect(via.body).toBe('inside');
    expect(via.headers['x-artifact-repo']).toBe('priv');
    expect((await curl(['-u', 'viewer:viewer-pass-1', `${srv.url}/priv/v.txt`])).status).toBe(404);
    expect((await curl([`${srv.url}/team/v.txt`])).status).toBe(404);
    // read on the virtual is not write through it
    expect((await curl(['-u', 'viewer:viewer-pass-1', '-X', 'PUT', '--data-binary', 'x', `${srv.url}/team/w.txt`])).status).toBe(403);
  });

  it('auth.anonymous = "none" hides every repo from anonymous; "write" lets anonymous push but never administer', async () => {
    const closed = await authServer({ 'auth.anonymous': 'none' });
    const open = await authServer({ 'auth.anonymous': 'write' });
    try {
      await closed.addRepo({ name: 'pub', format: 'generic', kind: 'local' });
      expect((await curl([`${closed.url}/pub/a`])).status).toBe(404);
      expect((await closed.api('GET', '/api/v1/repositories', undefined, null)).json).toEqual([]);
      await open.addRepo({ name: 'pub', format: 'generic', kind: 'local' });
      expect((await curl(['-X', 'PUT', '--data-binary', 'w', `${open.url}/pub/a`])).status).toBe(201);
      expect((await curl(['-X', 'DELETE', `${open.url}/pub/a`])).status).toBe(204);
      expect((await open.api('POST', '/api/v1/repositories', { name: 'y', format: 'generic', kind: 'local' }, null)).status).toBe(401);
    } finally {
      await closed.close();
      await open.close();
    }
  });

  it('auth.anonymous = "admin" lets a request without credentials use the management API too (throwaway stacks)', async () => {
    const open = await authServer({ 'auth.anonymous': 'admin' });
    try {
      const created = await fetch(`${open.url}/api/v1/repositories`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'anon-made', format: 'generic', kind: 'local' }),
      });
      expect(created.status).toBe(201);
      expect((await fetch(`${open.url}/anon-made/x`, { method: 'PUT', body: 'x' })).status).toBe(201);
      expect((await fetch(`${open.url}/api/v1/repositories/anon-made`, { method: 'DELETE' })).status).toBe(204);
    } finally {
      await open.close();
    }
    const refused = await fetch(`${srv.url}/api/v1/repositories`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'anon-made', format: 'generic', kind: 'local' }),
    });
    expect(refused.status).toBe(401);
  });
});
