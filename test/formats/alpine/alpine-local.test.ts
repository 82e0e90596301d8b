import { rm } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { apkGet, apkPut, buildApk, opensslVerifies, parseApkIndex, rsaKey, type TestKey } from './apks.js';

let srv: TestServer;
let repoUrl: string;
const pkgKey = rsaKey('builder@example.org-65000000');

async function keyOf(url: string): Promise<{ name: string; pem: string }> {
  const list = await fetch(`${url}/keys`);
  expect(list.status).toBe(200);
  const file = (await list.text()).trim();
  const res = await fetch(`${url}/keys/${file}`);
  expect(res.status).toBe(200);
  return { name: file.replace(/\.rsa\.pub$/, ''), pem: await res.text() };
}

async function index(url: string) {
  const { res, body } = await apkGet(url, 'x86_64', 'APKINDEX.tar.gz');
  expect(res.status).toBe(200);
  return { res, body, parsed: await parseApkIndex(body) };
}

beforeAll(async () => {
  srv = await startServer();
  await srv.addRepo({ name: 'alp', format: 'alpine', kind: 'local' });
  repoUrl = `${srv.url}/alp/v3.19/main`;
});
afterAll(async () => {
  await srv?.close();
});

describe('alpine local repo', () => {
  it('a directory without packages has no index (404 in the generic error shape)', async () => {
    const { res, body } = await apkGet(repoUrl, 'aarch64', 'APKINDEX.tar.gz');
    expect(res.status).toBe(404);
    expect(JSON.parse(body.toString()).error.code).toBe('NOT_FOUND');
  });

  it('PUT stores packages; apk update gets a signed APKINDEX with every field, C: recomputed, signature verified by openssl', async () => {
    const curl = await buildApk({
      name: 'curl', version: '8.5.0-r0', sign: pkgKey,
      info: [['depend', 'so:libc.musl-x86_64.so.1'], ['depend', 'ca-certificates'], ['provides', 'cmd:curl=8.5.0-r0'],
        ['install_if', 'curl-base=8.5.0-r0'], ['provider_priority', '10']],
    });
    const lib = await buildApk({ name: 'libfoo', version: '1.2_git20240101-r3', arch: 'noarch' });
    for (const p of [curl, lib]) {
      const res = await apkPut(`${repoUrl}/x86_64/${p.apk === curl.apk ? 'curl-8.5.0-r0' : 'libfoo-1.2_git20240101-r3'}.apk`, p.apk);
      expect(res.status).toBe(201);
      expect((await res.json()).checksum).toBe(p.checksum);
    }
    const { res, parsed } = await index(repoUrl);
    expect(res.headers.get('x-artifact-source')).toBe('local');
    const key = await keyOf(`${srv.url}/alp`);
    expect(key.pem).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(parsed.signatureName).toBe(`.SIGN.RSA.${key.name}.rsa.pub`);
    expect(opensslVerifies(key.pem, parsed.signature, parsed.signed)).toBe(true);
    // The signature covers the index stream: a changed byte no longer verifies.
    const tampered = Buffer.from(parsed.signed);
    tampered[tampered.length - 9] ^= 1;
    expect(opensslVerifies(key.pem, parsed.signature, tampered)).toBe(false);
    expect(parsed.description).toContain('v3.19/main/x86_64');
    expect(parsed.entries).toEqual([
      {
        C: curl.checksum, P: 'curl', V: '8.5.0-r0', A: 'x86_64', S: String(curl.apk.length), I: '4096', T: 'the curl package',
        U: 'https://example.org/', L: 'MIT', o: 'curl', m: 'Test <t@example.org>', t: '1700000000', c: 'abcdef0123456789',
        D: 'so:libc.musl-x86_64.so.1 ca-certificates', p: 'cmd:curl=8.5.0-r0', i: 'curl-base=8.5.0-r0', k: '10',
      },
      {
        C: lib.checksum, P: 'libfoo', V: '1.2_git20240101-r3', A: 'noarch', S: String(lib.apk.length), I: '4096', T: 'the libfoo package',
        U: 'https://example.org/', L: 'MIT', o: 'libfoo', m: 'Test <t@example.org>', t: '1700000000', c: 'abcdef0123456789',
      },
    ]);
    // apk add: the exact bytes back.
    const got = await apkGet(repoUrl, 'x86_64', 'curl-8.5.0-r0.apk');
    expect(got.res.status).toBe(200);
    expect(got.body.equals(curl.apk)).toBe(true);
    expect(got.res.headers.get('x-artifact-repo')).toBe('alp');
  });

  it('the index keeps its bytes and ETag between requests (304 with If-None-Match)', async () => {
    const a = await index(repoUrl);
    const b = await index(repoUrl);
    expect(b.body.equals(a.body)).toBe(true);
    const etag = a.res.headers.get('etag')!;
    const again = await apkGet(repoUrl, 'x86_64', 'APKINDEX.tar.gz', { 'if-none-match': etag });
    expect(again.res.status).toBe(304);
  });

  it('refuses a non-apk, a .PKGINFO that contradicts the file name or the arch with 400, and changes nothing', async () => {
    const before = await index(repoUrl);
    const good = await buildApk({ name: 'zlib', version: '1.3-r0' });
    const cases: [string, Buffer][] = [
      ['zlib-1.3-r0.apk', Buffer.from('not a package at all')],
      ['zlib-1.3-r0.apk', gzipSync(Buffer.from('one gzip stream, no tar'))],
      ['zlib-1.3-r0.apk', good.apk.subarray(0, 40)],
      ['zlib-1.3-r1.apk', good.apk],
      ['zlib2-1.3-r0.apk', good.apk],
      ['zlib-1.3-r0.apk', (await buildApk({ name: 'zlib', version: '1.3-r0', arch: 'aarch64' })).apk],
      ['zlib-1.3-r0.apk', (await buildApk({ name: 'zlib', version: 'one.two' })).apk],
      ['zlib-1.3-r0.apk', (await buildApk({ name: 'zlib', version: '1.3-r0', datahash: '0'.repeat(64) })).apk],
    ];
    for (const [file, body] of cases) {
      const res = await apkPut(`${repoUrl}/x86_64/${file}`, body);
      expect(res.status, file).toBe(400);
      const err = (await res.json()).error;
      expect(err.code).toBe('BAD_REQUEST');
      expect(JSON.stringify(err)).not.toMatch(/at .*\.ts:/);
      expect((await apkGet(repoUrl, 'x86_64', file)).res.status).toBe(404);
    }
    const after = await index(repoUrl);
    expect(after.body.equals(before.body)).toBe(true);
  });

  it('the same package twice is 409; DELETE drops it from the index', async () => {
    const p = await buildApk({ name: 'jq', version: '1.7.1-r0' });
    expect((await apkPut(`${repoUrl}/x86_64/jq-1.7.1-r0.apk`, p.apk)).status).toBe(201);
    expect((await apkPut(`${repoUrl}/x86_64/jq-1.7.1-r0.apk`, p.apk)).status).toBe(409);
    expect((await index(repoUrl)).parsed.entries.map((e) => e.P)).toContain('jq');
    expect((await fetch(`${repoUrl}/x86_64/jq-1.7.1-r0.apk`, { method: 'DELETE' })).status).toBe(200);
    const { parsed } = await index(repoUrl);
    expect(parsed.entries.map((e) => e.P)).toEqual(['curl', 'libfoo']);
    expect((await apkGet(repoUrl, 'x86_64', 'jq-1.7.1-r0.apk')).res.status).toBe(404);
  });

  it('a burst of concurrent uploads ends with every package in the index', async () => {
    const url = `${srv.url}/alp/edge/testing`;
    const pkgs = await Promise.all(Array.from({ length: 8 }, (_, i) => buildApk({ name: `burst${i}`, version: '1.0-r0' })));
    const codes = await Promise.all(pkgs.map((p, i) => apkPut(`${url}/x86_64/burst${i}-1.0-r0.apk`, p.apk).then((r) => r.status)));
    expect(codes).toEqual(Array(8).fill(201));
    const { parsed } = await index(url);
    expect(parsed.entries.map((e) => e.C).sort()).toEqual(pkgs.map((p) => p.checksum).sort());
  });
});

describe('alpine signing keys', () => {
  it('the generated key is stored with the repo, not on one host: another instance over the same stores signs with it', async () => {
    const stack = process.env.ARTIFACTAPI_TEST_STACK === '1';
    const first = await startServer();
    await first.addRepo({ name: 'kept', format: 'alpine', kind: 'local' });
    // Stack runs (ARTIFACTAPI_TEST_STACK=1): a second instance on the first one's Postgres, S3 and
    // Redis, both asked at once. SQLite: the same data dir after a restart (one process cannot
    // hold two SQLite writers at once).
    const c = first.config as unknown as { database: { url: string }; storage: Record<string, unknown>; redis: { url: string } };
    const shared = stack ? {
      'database.url': c.database.url, 'redis.url': c.redis.url,
      ...Object.fromEntries(['type', 'endpoint', 'bucket', 'access_key', 'secret_key', 'force_path_style'].map((k) => [`storage.${k}`, c.storage[k]])),
    } : {};
    let second: TestServer | undefined;
    try {
      let a: { name: string; pem: string };
      let b: { name: string; pem: string };
      if (stack) {
        second = await startServer(shared, { keepDataDir: first.dataDir });
        [a, b] = await Promise.all([keyOf(`${first.url}/kept`), keyOf(`${second.url}/kept`)]);
      } else {
        a = await keyOf(`${first.url}/kept`);
        await first.app.close();
        await first.svc.close();
        second = await startServer({}, { keepDataDir: first.dataDir });
        b = await keyOf(`${second.url}/kept`);
      }
      expect(b).toEqual(a);
      const p = await buildApk({ name: 'a', version: '1-r0' });
      expect((await apkPut(`${second.url}/kept/v1/main/x86_64/a-1-r0.apk`, p.apk)).status).toBe(201);
      const { parsed } = await index(`${second.url}/kept/v1/main`);
      expect(parsed.signatureName).toBe(`.SIGN.RSA.${a.name}.rsa.pub`);
      expect(opensslVerifies(a.pem, parsed.signature, parsed.signed)).toBe(true);
    } finally {
      await second?.close();
      if (stack) await first.close();
      else await rm(first.dataDir, { recursive: true, force: true });
    }
  });

  it('signing_key_env and key_name: the index is signed with the given key, published at keys/<key_name>.rsa.pub', async () => {
    const given: TestKey = rsaKey('corp-apk@example.org-5f000000');
    const env = { ARTIFACTAPI_TEST_APK_KEY: given.privatePem };
    const saved = process.env.ARTIFACTAPI_TEST_APK_KEY;
    process.env.ARTIFACTAPI_TEST_APK_KEY = env.ARTIFACTAPI_TEST_APK_KEY;
    try {
      await srv.addRepo({ name: 'signed', format: 'alpine', kind: 'local', signing_key_env: 'ARTIFACTAPI_TEST_APK_KEY', key_name: given.name });
      const p = await buildApk({ name: 'b', version: '2-r0' });
      expect((await apkPut(`${srv.url}/signed/v3.19/main/x86_64/b-2-r0.apk`, p.apk)).status).toBe(201);
      const { parsed } = await index(`${srv.url}/signed/v3.19/main`);
      expect(parsed.signatureName).toBe(`.SIGN.RSA.${given.name}.rsa.pub`);
      expect(opensslVerifies(given.publicPem, parsed.signature, parsed.signed)).toBe(true);
      const pub = await fetch(`${srv.url}/signed/keys/${given.name}.rsa.pub`);
      expect(await pub.text()).toBe(given.publicPem);
      expect((await fetch(`${srv.url}/signed/keys/other.rsa.pub`)).status).toBe(404);
    } finally {
      if (saved === undefined) delete process.env.ARTIFACTAPI_TEST_APK_KEY;
      else process.env.ARTIFACTAPI_TEST_APK_KEY = saved;
    }
  });

  it('a signing key that cannot be read is a 500 in the generic error shape, and an upload then stores nothing', async () => {
    await srv.addRepo({ name: 'nokey', format: 'alpine', kind: 'local', signing_key_env: 'ARTIFACTAPI_TEST_APK_KEY_UNSET' });
    const res = await fetch(`${srv.url}/nokey/keys`);
    expect(res.status).toBe(500);
    const body = await res.json();
    expect(body.error.code).toBe('INTERNAL');
    expect(JSON.stringify(body)).not.toMatch(/\.ts:\d+/);
    const p = await buildApk({ name: 'c', version: '1-r0' });
    expect((await apkPut(`${srv.url}/nokey/v1/main/x86_64/c-1-r0.apk`, p.apk)).status).toBe(500);
    expect(await srv.svc.meta.files.get('nokey', 'v1/main/x86_64/c-1-r0.apk')).toBeNull();
  });
});
