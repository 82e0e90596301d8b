import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGc } from '../../../src/maintenance/gc.js';
import { startServer, type TestServer } from '../../helpers/server.js';
import { which } from '../../helpers/which.js';
import { buildFixtureRpms, dnf, HAVE_DNF, HAVE_RPMBUILD, tempDir } from './rpms.js';

const HAVE_GPG = which('gpg');
const LIB = 'hello-lib-1.2.0-3.noarch.rpm';
const TOOL = 'hello-tool-2.0-1.noarch.rpm';
const ENV = { key: 'ARTIFACTAPI_TEST_RPM_GPG_KEY', other: 'ARTIFACTAPI_TEST_RPM_GPG_OTHER', locked: 'ARTIFACTAPI_TEST_RPM_GPG_LOCKED', pass: 'ARTIFACTAPI_TEST_RPM_GPG_PASS' };

let srv: TestServer;
let dir: string;
let rpms: Map<string, Buffer>;
let key: { privateKey: string; publicKey: string };
let other: { privateKey: string; publicKey: string };

async function rsaKey(name: string, passphrase?: string) {
  return openpgp.generateKey({ type: 'rsa', rsaBits: 2048, userIDs: [{ name, email: `${name}@example.org` }], passphrase, format: 'armored' });
}

beforeAll(async () => {
  dir = tempDir();
  if (HAVE_RPMBUILD) rpms = buildFixtureRpms(dir);
  [key, other] = await Promise.all([rsaKey('rpm-signer'), rsaKey('someone-else')]);
  const locked = await rsaKey('locked', 'open sesame');
  process.env[ENV.key] = key.privateKey;
  process.env[ENV.other] = other.privateKey;
  process.env[ENV.locked] = locked.privateKey;
  process.env[ENV.pass] = 'open sesame';
  srv = await startServer();
  await srv.addRepo({ name: 'rs', format: 'rpm', kind: 'local', gpg_key_env: ENV.key });
}, 60_000);
afterAll(async () => {
  await srv?.close();
  for (const v of Object.values(ENV)) delete process.env[v];
  rmSync(dir, { recursive: true, force: true });
});

const put = (repo: string, path: string, body: Buffer) => fetch(`${srv.url}/${repo}/${path}`, { method: 'PUT', body: new Uint8Array(body) });
const get = async (url: string) => {
  const res = await fetch(url);
  expect(res.status, url).toBe(200);
  return Buffer.from(await res.arrayBuffer());
};

/** `gpg --verify` of the detached signature over the data in a fresh GNUPGHOME holding only `publicKey`; the signer's fingerprint. */
function gpgVerify(publicKey: string, asc: Buffer, data: Buffer): string {
  const home = join(dir, `gnupg-${Math.random().toString(36).slice(2)}`);
  mkdirSync(home, { mode: 0o700 });
  try {
    writeFileSync(join(home, 'key.asc'), publicKey);
    writeFileSync(join(home, 'repomd.xml.asc'), asc);
    writeFileSync(join(home, 'repomd.xml'), data);
    execFileSync('gpg', ['--homedir', home, '--batch', '--quiet', '--import', join(home, 'key.asc')], { stdio: 'pipe' });
    const status = execFileSync('gpg', ['--homedir', home, '--batch', '--status-fd', '1', '--verify', join(home, 'repomd.xml.asc'), join(home, 'repomd.xml')],
      { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    return /\[GNUPG:\] VALIDSIG ([0-9A-F]+)/.exec(status)![1];
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

async function fingerprint(armored: string): Promise<string> {
  return (await openpgp.readKey({ armoredKey: armored })).getFingerprint().toUpperCase();
}

async function rowPaths(repo: string): Promise<string[]> {
  const out: string[] = [];
  for await (const f of srv.svc.meta.files.list(repo)) out.push(f.path);
  return out;
}

describe.skipIf(!HAVE_RPMBUILD || !HAVE_GPG)('rpm signed repodata (repomd.xml.asc)', () => {
  it('a repo without a gpg key has no repomd.xml.asc or .key: 404 in the generic error shape', async () => {
    await srv.addRepo({ name: 'unsigned', format: 'rpm', kind: 'local' });
    for (const f of ['repomd.xml.asc', 'repomd.xml.key']) {
      const res = await fetch(`${srv.url}/unsigned/repodata/${f}`);
      expect(res.status, f).toBe(404);
      expect((await res.json()).error.code, f).toBe('NOT_FOUND');
    }
  });

  it('the signature is stored with each generation and gpg --verify accepts it against the served repomd.xml', async () => {
    expect((await put('rs', LIB, rpms.get(LIB)!)).status).toBe(201);
    // Stored as part of the generation, before anyone asked for the .asc.
    const repomd = await get(`${srv.url}/rs/repodata/repomd.xml`);
    const stored = (await rowPaths('rs')).filter((p) => p.endsWith('-repomd.xml.asc'));
    expect(stored).toHaveLength(1);
    const asc = await get(`${srv.url}/rs/repodata/repomd.xml.asc`);
    expect(asc.toString()).toMatch(/^-----BEGIN PGP SIGNATURE-----/);
    expect(gpgVerify(key.publicKey, asc, repomd)).toBe(await fingerprint(key.publicKey));
    // The served public key is the signer's, armored.
    const pub = await fetch(`${srv.url}/rs/repodata/repomd.xml.key`);
    expect(pub.headers.get('content-type')).toMatch(/^application\/pgp-keys/);
    const pubText = await pub.text();
    expect(pubText).toMatch(/^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
    expect(pubText).not.toMatch(/PRIVATE/);
    expect(await fingerprint(pubText)).toBe(await fingerprint(key.publicKey));
    expect(gpgVerify(pubText, asc, repomd)).toBe(await fingerprint(key.publicKey));

    // A new generation: the .asc follows the new repomd.xml, and the other key does not verify it.
    expect((await put('rs', `tools/${TOOL}`, rpms.get(TOOL)!)).status).toBe(201);
    const repomd2 = await get(`${srv.url}/rs/repodata/repomd.xml`);
    expect(repomd2.equals(repomd)).toBe(false);
    const asc2 = await get(`${srv.url}/rs/repodata/repomd.xml.asc`);
    expect(gpgVerify(key.publicKey, asc2, repomd2)).toBe(await fingerprint(key.publicKey));
    expect(() => gpgVerify(key.publicKey, asc, repomd2)).toThrow();
    expect(() => gpgVerify(other.publicKey, asc2, repomd2)).toThrow();
  });

  it('gc keeps the current signature and reclaims the old ones', async () => {
    expect((await rowPaths('rs')).filter((p) => p.endsWith('-repomd.xml.asc')).length).toBeGreaterThan(1);
    await runGc(srv.svc, { now: Date.now() + srv.config.gc.grace + 1000 });
    expect((await rowPaths('rs')).filter((p) => p.endsWith('-repomd.xml.asc'))).toHaveLength(1);
    const asc = await get(`${srv.url}/rs/repodata/repomd.xml.asc`);
    expect(gpgVerify(key.publicKey, asc, await get(`${srv.url}/rs/repodata/repomd.xml`))).toBe(await fingerprint(key.publicKey));
  });

  it.skipIf(!HAVE_DNF)('dnf with repo_gpgcheck=1 and gpgkey=repomd.xml.key installs a package', async () => {
    const d = tempDir();
    try {
      const out = await dnf(d, `${srv.url}/rs/`, ['install', 'hello-tool'], `repo_gpgcheck=1\ngpgkey=${srv.url}/rs/repodata/repomd.xml.key\n`);
      expect(out).toMatch(/hello-lib/);
      const q = await dnf(d, `${srv.url}/rs/`, ['repoquery', '--installed', '--qf', '%{name}'], `repo_gpgcheck=1\ngpgkey=${srv.url}/rs/repodata/repomd.xml.key\n`);
      expect(q).toContain('hello-tool');
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  }, 180_000);

  it.skipIf(!HAVE_DNF)('dnf with repo_gpgcheck=1 refuses repodata signed by another key, and a tampered repomd.xml', async () => {
    await srv.addRepo({ name: 'rs-other', format: 'rpm', kind: 'local', gpg_key_env: ENV.other });
    // A proxy in front of rs that changes repomd.xml by one comment and passes everything else through.
    const proxy: Server = createServer(async (req, res) => {
      const up = await fetch(`${srv.url}${req.url}`);
      let body = Buffer.from(await up.arrayBuffer());
      if (req.url!.endsWith('/repomd.xml')) body = Buffer.from(body.toString().replace('<revision>', '<!-- x --><revision>'));
      res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/octet-stream' }).end(body);
    });
    await new Promise<void>((ok) => proxy.listen(0, '127.0.0.1', ok));
    const proxied = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
    const cases: [string, string, string][] = [
      ['wrong key', `${srv.url}/rs/`, `${srv.url}/rs-other/repodata/repomd.xml.key`],
      ['tampered repomd.xml', `${proxied}/rs/`, `${srv.url}/rs/repodata/repomd.xml.key`],
    ];
    try {
      for (const [what, baseurl, gpgkey] of cases) {
        const d = tempDir();
        try {
          const err = await dnf(d, baseurl, ['makecache'], `repo_gpgcheck=1\ngpgkey=${gpgkey}\nskip_if_unavailable=0\n`).then(() => null, (e) => e);
          expect(err, what).not.toBeNull();
          expect(`${err.stdout}${err.stderr}`, what).toMatch(/repomd.xml GPG signature verification error/);
        } finally {
          rmSync(d, { recursive: true, force: true });
        }
      }
    } finally {
      await new Promise((ok) => proxy.close(ok));
    }
  }, 180_000);

  it('a passphrase-protected key signs with gpg_passphrase_env; repo show never contains the key', async () => {
    await srv.addRepo({ name: 'rs-locked', format: 'rpm', kind: 'local', gpg_key_env: ENV.locked, gpg_passphrase_env: ENV.pass });
    expect((await put('rs-locked', LIB, rpms.get(LIB)!)).status).toBe(201);
    const pub = await (await fetch(`${srv.url}/rs-locked/repodata/repomd.xml.key`)).text();
    const asc = await get(`${srv.url}/rs-locked/repodata/repomd.xml.asc`);
    expect(gpgVerify(pub, asc, await get(`${srv.url}/rs-locked/repodata/repomd.xml`))).toBe(await fingerprint(pub));
    const shown = await (await fetch(`${srv.url}/api/v1/repositories/rs-locked`)).text();
    expect(shown).not.toMatch(/PGP|open sesame/);
    expect(JSON.parse(shown).options).toEqual({ gpg_key_env: ENV.locked, gpg_passphrase_env: ENV.pass });
  });

  it('gpg_key_file: the key is read from the file; gpg_key_env wins over it', async () => {
    const file = join(dir, 'other.asc');
    writeFileSync(file, other.privateKey);
    await srv.addRepo({ name: 'rs-file', format: 'rpm', kind: 'local', gpg_key_file: file });
    await srv.addRepo({ name: 'rs-both', format: 'rpm', kind: 'local', gpg_key_file: file, gpg_key_env: ENV.key });
    for (const [repo, signer] of [['rs-file', other], ['rs-both', key]] as const) {
      const pub = await (await fetch(`${srv.url}/${repo}/repodata/repomd.xml.key`)).text();
      expect(await fingerprint(pub), repo).toBe(await fingerprint(signer.publicKey));
      const asc = await get(`${srv.url}/${repo}/repodata/repomd.xml.asc`);
      expect(gpgVerify(signer.publicKey, asc, await get(`${srv.url}/${repo}/repodata/repomd.xml`)), repo).toBe(await fingerprint(signer.publicKey));
    }
  });

  it('gpg_key given as the value and gpg_passphrase_file: signs, and show masks the key', async () => {
    const locked = await rsaKey('locked-inline', 'file sesame');
    const pass = join(dir, 'passphrase');
    writeFileSync(pass, 'file sesame\n');
    await srv.addRepo({ name: 'rs-inline', format: 'rpm', kind: 'local', gpg_key: locked.privateKey, gpg_passphrase_file: pass });
    expect((await put('rs-inline', LIB, rpms.get(LIB)!)).status).toBe(201);
    const asc = await get(`${srv.url}/rs-inline/repodata/repomd.xml.asc`);
    expect(gpgVerify(locked.publicKey, asc, await get(`${srv.url}/rs-inline/repodata/repomd.xml`))).toBe(await fingerprint(locked.publicKey));
    const shown = await (await fetch(`${srv.url}/api/v1/repositories/rs-inline`)).text();
    expect(shown).not.toMatch(/PGP|sesame/);
    expect(JSON.parse(shown).options).toEqual({ gpg_key: '********', gpg_passphrase_file: pass });
  });

  it('a key that cannot be used is a 500 in the generic shape and an upload stores nothing', async () => {
    await srv.addRepo({ name: 'rs-bad', format: 'rpm', kind: 'local', gpg_key_env: 'ARTIFACTAPI_TEST_RPM_GPG_UNSET' });
    await srv.addRepo({ name: 'rs-nopass', format: 'rpm', kind: 'local', gpg_key_env: ENV.locked });
    for (const repo of ['rs-bad', 'rs-nopass']) {
      const res = await put(repo, LIB, rpms.get(LIB)!);
      expect(res.status, repo).toBe(500);
      const body = await res.json();
      expect(body.error.code, repo).toBe('INTERNAL');
      expect(JSON.stringify(body)).not.toMatch(/\.ts:\d+|PGP/);
      expect(await srv.svc.meta.files.get(repo, LIB), repo).toBeNull();
    }
  });

  it('a key set on a repo that already has repodata signs its current repomd.xml', async () => {
    await srv.addRepo({ name: 'rs-later', format: 'rpm', kind: 'local' });
    expect((await put('rs-later', LIB, rpms.get(LIB)!)).status).toBe(201);
    const repomd = await get(`${srv.url}/rs-later/repodata/repomd.xml`);
    expect((await fetch(`${srv.url}/rs-later/repodata/repomd.xml.asc`)).status).toBe(404);
    await srv.svc.repos.put({ name: 'rs-later', format: 'rpm', kind: 'local', options: { gpg_key_env: ENV.key } });
    const asc = await get(`${srv.url}/rs-later/repodata/repomd.xml.asc`);
    expect((await get(`${srv.url}/rs-later/repodata/repomd.xml`)).equals(repomd)).toBe(true);
    expect(gpgVerify(key.publicKey, asc, repomd)).toBe(await fingerprint(key.publicKey));
  });

  it('a virtual rpm repo with its own key signs its merged repomd.xml', async () => {
    await srv.addRepo({ name: 'rs-virt', format: 'rpm', kind: 'virtual', members: ['rs'], gpg_key_env: ENV.other });
    const repomd = await get(`${srv.url}/rs-virt/repodata/repomd.xml`);
    const asc = await get(`${srv.url}/rs-virt/repodata/repomd.xml.asc`);
    const pub = await (await fetch(`${srv.url}/rs-virt/repodata/repomd.xml.key`)).text();
    expect(await fingerprint(pub)).toBe(await fingerprint(other.publicKey));
    expect(gpgVerify(other.publicKey, asc, repomd)).toBe(await fingerprint(other.publicKey));
    expect((await rowPaths('rs-virt')).filter((p) => p.endsWith('-repomd.xml.asc'))).toHaveLength(1);
  });
});
