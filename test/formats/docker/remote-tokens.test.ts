import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CACHES, cachedTokenCount, MAX_TOKENS, upstreamAuth } from '../../../src/formats/docker/remote-auth.js';
import { startServer, type TestServer } from '../../helpers/server.js';
import { startUpstream } from '../../helpers/upstream.js';
import { spawnServe } from '../../cli/bin.js';
import { which } from './util.js';

const MT = 'application/vnd.oci.image.manifest.v1+json';

/**
 * A registry with a token realm, as Docker Hub has: /v2/ answers 401 with a
 * Bearer challenge naming `realm`; the realm hands out `tok-<label>-<n>`;
 * manifests need one of the tokens it trusts (its own, or another realm's via
 * `trust`). Every Authorization header is recorded. `tls`: served over https.
 */
async function tokenRegistry(label: string, o: { realm?: (self: string) => string; tls?: { key: Buffer; cert: Buffer } } = {}) {
  const auths: string[] = [];
  const issued = new Set<string>();
  let trusted = issued;
  let n = 0;
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'0'.repeat(64)}`, size: 2 }, layers: [], annotations: { from: label } }));
  const digest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
  let self = '';
  const hits: string[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    hits.push(path);
    if (req.headers.authorization) auths.push(req.headers.authorization);
    if (path === '/token') {
      const token = `tok-${label}-${++n}`;
      issued.add(token);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 }));
      return;
    }
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (!bearer || !trusted.has(bearer)) {
      const realm = o.realm ? o.realm(self) : `${self}/token`;
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm}",service="${label}"`, 'content-type': 'application/json' })
        .end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'auth', detail: null }] }));
      return;
    }
    if (/^\/v2\/.+\/manifests\//.test(path)) {
      res.writeHead(200, { 'content-type': MT, 'docker-content-digest': digest, 'content-length': String(manifest.length) });
      res.end(req.method === 'HEAD' ? undefined : manifest);
      return;
    }
    res.writeHead(404).end();
  };
  let close: () => Promise<void>;
  if (o.tls) {
    const server = createHttpsServer(o.tls, handler);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    self = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
    close = async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    };
  } else {
    const up = await startUpstream(handler);
    self = up.url;
    close = () => up.close();
  }
  return {
    up: { url: self, count: (prefix: string) => hits.filter((h) => h.startsWith(prefix)).length },
    auths, issued, digest, close,
    trust(other: Set<string>) {
      trusted = other;
    },
  };
}

describe('docker remote upstream tokens', () => {
  let srv: TestServer;
  let regA: Awaited<ReturnType<typeof tokenRegistry>>;
  let regB: Awaited<ReturnType<typeof tokenRegistry>>;

  beforeAll(async () => {
    [regA, regB] = await Promise.all([tokenRegistry('A'), tokenRegistry('B')]);
    srv = await startServer();
  });
  afterAll(async () => {
    await srv?.close();
    await regA?.close();
    await regB?.close();
  });

  it('a token (or credentials) for the old upstream are never sent to a new one after the repo is changed', async () => {
    await srv.addRepo({ name: 'dmove', format: 'docker', kind: 'remote', upstream: regA.up.url, metadata_ttl: '1ms', username: 'ua', password: 'pa-secret' });
    const a = await fetch(`${srv.url}/v2/dmove/team/app/manifests/1`, { headers: { accept: MT } });
    expect(a.status).toBe(200);
    expect(a.headers.get('docker-content-digest')).toBe(regA.digest);
    expect(regA.issued.size).toBe(1);

    const put = await fetch(`${srv.url}/api/v1/repositories/dmove`, {
      method: 'PUT', headers: { 'content-type': 'application/json', authorization: srv.adminAuth },
      body: JSON.stringify({ format: 'docker', kind: 'remote', upstream: regB.up.url, metadata_ttl: '1ms' }),
    });
    expect(put.status).toBe(200);
    await new Promise((r) => setTimeout(r, 5));
    const b = await fetch(`${srv.url}/v2/dmove/team/app/manifests/1`, { headers: { accept: MT } });
    expect(b.status).toBe(200);
    expect(b.headers.get('docker-content-digest')).toBe(regB.digest);
    for (const t of regA.issued) expect(regB.auths.join('\n')).not.toContain(t);
    expect(regB.auths).toContain('Bearer tok-B-1');
    expect(regA.auths).toContain(`Basic ${Buffer.from('ua:pa-secret').toString('base64')}`);
    // The credentials belonged to the old upstream too: an update to another origin that does not restate them drops them.
    expect(regB.auths.some((h) => h.startsWith('Basic '))).toBe(false);
    expect((await (await fetch(`${srv.url}/api/v1/repositories/dmove`)).json()).options.password).toBeUndefined();
  });

  it('keeps at most MAX_TOKENS upstream tokens', async () => {
    await srv.addRepo({ name: 'dmany', format: 'docker', kind: 'remote', upstream: regB.up.url });
    const def = (await srv.svc.repos.get('dmany'))!;
    for (let i = 0; i < MAX_TOKENS + 50; i += 25) {
      await Promise.all(Array.from({ length: 25 }, (_, j) => upstreamAuth(srv.svc, def, `img/n${i + j}`)));
    }
    expect(cachedTokenCount(srv.svc)).toBeLessThanOrEqual(MAX_TOKENS);
    const before = regB.issued.size;
    await upstreamAuth(srv.svc, def, 'img/n0'); // evicted long ago: asks the realm again
    expect(regB.issued.size).toBe(before + 1);
    await upstreamAuth(srv.svc, def, `img/n${MAX_TOKENS + 49}`); // recent: still cached
    expect(regB.issued.size).toBe(before + 1);
  });

  it('two servers in one process keep their own upstream tokens', async () => {
    const other = await startServer();
    try {
      await other.addRepo({ name: 'dmany', format: 'docker', kind: 'remote', upstream: regB.up.url });
      const def = (await other.svc.repos.get('dmany'))!;
      expect(cachedTokenCount(other.svc)).toBe(0);
      const before = regB.issued.size;
      await upstreamAuth(other.svc, def, `img/n${MAX_TOKENS + 49}`); // cached by srv, not by this one
      expect(regB.issued.size).toBe(before + 1);
      expect(cachedTokenCount(other.svc)).toBe(1);
    } finally {
      await other.close();
    }
  });

  it('the challenge and identity caches stay within their bounds; an evicted identity only costs a new token', async () => {
    const small = await startServer();
    try {
      // Before first use: these bounds stay.
      const identities = small.svc.caches.lru(CACHES.identities.name, 1024 * 1024, 2);
      const challenges = small.svc.caches.lru(CACHES.challenges.name, 1024 * 1024, 1);
      for (const [name, up] of [['i1', regB], ['i2', regB], ['i3', regA]] as const) {
        await small.addRepo({ name, format: 'docker', kind: 'remote', upstream: up.up.url });
      }
      const defs = await Promise.all(['i1', 'i2', 'i3'].map(async (n) => (await small.svc.repos.get(n))!));
      for (const d of defs) expect((await upstreamAuth(small.svc, d, 'img/x')).authorization).toMatch(/^Bearer tok-[AB]-\d+$/);
      expect(identities.size).toBe(2);
      expect(challenges.size).toBe(1);
      expect(cachedTokenCount(small.svc)).toBe(3);
      // i1's identity was evicted: its cached token is dropped and a new one asked for, as after a change.
      const before = regB.issued.size;
      const again = await upstreamAuth(small.svc, defs[0], 'img/x');
      expect(regB.issued.size).toBe(before + 1);
      expect(again.authorization).toBe(`Bearer tok-B-${before + 1}`);
      expect(identities.size).toBe(2);
    } finally {
      await small.close();
    }
  });

  it.skipIf(!which('openssl'))('refuses to send configured credentials to a plain-http realm of an https upstream; anonymous still works', async () => {
    // A real https upstream (self-signed, trusted by the server process through NODE_EXTRA_CA_CERTS)
    // whose challenge downgrades the token realm to plain http on another port.
    const dir = await mkdtemp(join(tmpdir(), 'docker-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    const realm = await tokenRegistry('R');
    const tls = await tokenRegistry('S', { realm: () => `${realm.up.url}/token`, tls: { key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) } });
    tls.trust(realm.issued);
    const serve = await spawnServe([], { env: { NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') } });
    try {
      const add = (body: Record<string, unknown>) => fetch(`${serve.url}/api/v1/repositories`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${serve.adminToken}` }, body: JSON.stringify(body) });
      expect((await add({ name: 'dcreds', format: 'docker', kind: 'remote', upstream: tls.up.url, username: 'u', password: 'secret-pw' })).status).toBe(201);
      expect((await add({ name: 'danon', format: 'docker', kind: 'remote', upstream: tls.up.url })).status).toBe(201);

      const refused = await fetch(`${serve.url}/v2/dcreds/team/app/manifests/1`, { headers: { accept: MT } });
      expect(refused.status).toBe(502);
      expect((await refused.json()).errors[0]).toEqual({ code: 'UNAVAILABLE', message: expect.any(String), detail: null });
      expect(realm.up.count('/token')).toBe(0);
      expect(realm.auths.join('\n')).not.toContain('Basic');

      const anon = await fetch(`${serve.url}/v2/danon/team/app/manifests/1`, { headers: { accept: MT } });
      expect(anon.status).toBe(200);
      expect(anon.headers.get('docker-content-digest')).toBe(tls.digest);
      expect(realm.up.count('/token')).toBe(1);
    } finally {
      await serve.stop();
      await realm.close();
      await tls.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
