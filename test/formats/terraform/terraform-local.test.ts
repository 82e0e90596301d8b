import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { expectedH1, getBytes, gpgKey, HAVE_GPG, keyIdOf, makeZip, moduleTgz, providerZip, replayMirror, replayProviderInit, sha256hex } from './terraform.js';

const ENV = 'ARTIFACTAPI_TEST_TF_GPG_KEY';
let srv: TestServer;
let key: { privateKey: string; publicKey: string };
const linux = providerZip('thing', '1.2.0', 'linux');
const darwin = providerZip('thing', '1.2.0', 'darwin');

const put = (path: string, body: Buffer, repo = 'tf') => fetch(`${srv.url}/${repo}/${path}`, { method: 'PUT', body: new Uint8Array(body) });

beforeAll(async () => {
  key = await gpgKey('tf-signer');
  process.env[ENV] = key.privateKey;
  srv = await startServer({ 'terraform.default_repo': 'tf' });
  await srv.addRepo({ name: 'tf', format: 'terraform', kind: 'local', gpg_key_env: ENV });
  await srv.addRepo({ name: 'tf-nokey', format: 'terraform', kind: 'local' });
}, 60_000);
afterAll(async () => {
  await srv?.close();
  delete process.env[ENV];
});

describe.skipIf(!HAVE_GPG)('terraform local repo', () => {
  it('takes provider zips per platform and answers 201 with the shasum', async () => {
    const res = await put('v1/providers/acme/thing/1.2.0/linux_amd64.zip', linux);
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({
      namespace: 'acme', type: 'thing', version: '1.2.0', os: 'linux', arch: 'amd64',
      filename: 'terraform-provider-thing_1.2.0_linux_amd64.zip', shasum: sha256hex(linux), size: linux.length,
    });
    expect((await put('v1/providers/acme/thing/1.2.0/darwin_arm64.zip?protocols=5.0,6.0', darwin)).status).toBe(201);
    expect((await put('v1/providers/acme/thing/1.0.0/linux_amd64.zip', providerZip('thing', '1.0.0'))).status).toBe(201);
  });

  it('serves the host-root discovery document naming terraform.default_repo', async () => {
    const res = await fetch(`${srv.url}/.well-known/terraform.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({ 'providers.v1': '/tf/v1/providers/', 'modules.v1': '/tf/v1/modules/' });
  });

  it('replays terraform init: discovery, versions, download JSON, SHA256SUMS verified by gpg against the listed key, zip sha256', async () => {
    const r = await replayProviderInit({ host: srv.url, ns: 'acme', type: 'thing', version: '1.2.0', os: 'linux', arch: 'amd64' });
    expect(r.zip.equals(linux)).toBe(true);
    expect(r.keyId).toBe(await keyIdOf(key.publicKey));
    const keys = (r.download.signing_keys as any).gpg_public_keys;
    expect(keys).toHaveLength(1);
    expect(keys[0].key_id).toBe(await keyIdOf(key.publicKey));
    expect(keys[0].ascii_armor).toMatch(/^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
    expect(keys[0].ascii_armor).not.toMatch(/PRIVATE/);
    expect(r.download).toMatchObject({
      protocols: ['5.0'], os: 'linux', arch: 'amd64', filename: 'terraform-provider-thing_1.2.0_linux_amd64.zip', shasum: sha256hex(linux),
      download_url: `${srv.url}/tf/v1/providers/acme/thing/1.2.0/linux_amd64.zip`,
    });
    expect(r.sums.toString()).toBe(
      `${sha256hex(darwin)}  terraform-provider-thing_1.2.0_darwin_arm64.zip\n${sha256hex(linux)}  terraform-provider-thing_1.2.0_linux_amd64.zip\n`);
    const versions = await (await fetch(`${srv.url}/tf/v1/providers/acme/thing/versions`)).json();
    expect(versions).toEqual({
      versions: [
        { version: '1.2.0', protocols: ['5.0', '6.0'], platforms: [{ os: 'darwin', arch: 'arm64' }, { os: 'linux', arch: 'amd64' }] },
        { version: '1.0.0', protocols: ['5.0'], platforms: [{ os: 'linux', arch: 'amd64' }] },
      ],
    });
  });

  it('a new platform makes a new SHA256SUMS; the earlier download JSON still names the SHA256SUMS and signature that belong together', async () => {
    const before = await (await fetch(`${srv.url}/tf/v1/providers/acme/thing/1.2.0/download/linux/amd64`)).json();
    const win = providerZip('thing', '1.2.0', 'windows');
    expect((await put('v1/providers/acme/thing/1.2.0/windows_amd64.zip', win)).status).toBe(201);
    const after = await replayProviderInit({ host: srv.url, ns: 'acme', type: 'thing', version: '1.2.0', os: 'windows', arch: 'amd64' });
    expect(after.sums.toString()).toContain('terraform-provider-thing_1.2.0_windows_amd64.zip');
    expect(after.download.shasums_url).not.toBe(before.shasums_url);
    const oldSums = await getBytes(before.shasums_url);
    const oldSig = await getBytes(before.shasums_signature_url);
    expect(oldSums.status).toBe(200);
    expect(oldSums.body.toString()).not.toContain('windows');
    const { gpgVerify } = await import('./terraform.js');
    expect(gpgVerify(key.publicKey, oldSig.body, oldSums.body)).toBe(await keyIdOf(key.publicKey));
    expect(() => gpgVerify(key.publicKey, oldSig.body, after.sums)).toThrow();
  });

  it('replays the network mirror protocol: index.json, <version>.json, zip checked against h1: and zh:', async () => {
    const r = await replayMirror({ mirror: `${srv.url}/tf`, hostname: 'registry.example.org', ns: 'acme', type: 'thing', version: '1.2.0', platform: 'darwin_arm64' });
    expect(r.versions).toEqual({ '1.2.0': {}, '1.0.0': {} });
    expect(r.zip.equals(darwin)).toBe(true);
    expect(r.archive.url).toBe(`${srv.url}/tf/v1/providers/acme/thing/1.2.0/darwin_arm64.zip`);
    const doc = await (await fetch(`${srv.url}/tf/registry.example.org/acme/thing/1.2.0.json`)).json();
    expect(Object.keys(doc.archives).sort()).toEqual(['darwin_arm64', 'linux_amd64', 'windows_amd64']);
    expect(doc.archives.linux_amd64.hashes).toEqual([expectedH1(linux), `zh:${sha256hex(linux)}`]);
    expect(r.archive.hashes).toEqual([expectedH1(darwin), `zh:${sha256hex(darwin)}`]);
  });

  it('refuses bad uploads with a clear error and keeps what it had', async () => {
    const bad = await put('v1/providers/acme/thing/1.3.0/linux_amd64.zip', Buffer.from('not a zip at all, just text'));
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toEqual({ code: 'BAD_REQUEST', message: 'invalid provider package: not a zip file (no end of central directory)' });
    const evil = await put('v1/providers/acme/thing/1.3.0/linux_amd64.zip', makeZip({ '../../terraform-provider-thing': 'x' }));
    expect(evil.status).toBe(400);
    expect((await evil.json()).error.message).toBe('provider package has a member outside its directory: "../../terraform-provider-thing"');
    const semverBad = await put('v1/providers/acme/thing/v1.3/linux_amd64.zip', linux);
    expect(semverBad.status).toBe(400);
    expect((await semverBad.json()).error.message).toBe('version "v1.3" is not SemVer 2 (e.g. 1.2.3)');
    const badType = await put('v1/providers/acme/Thing_X/1.3.0/linux_amd64.zip', linux);
    expect(badType.status).toBe(400);
    const dup = await put('v1/providers/acme/thing/1.2.0/linux_amd64.zip', providerZip('thing', '1.2.0', 'other'));
    expect(dup.status).toBe(409);
    const versions = await (await fetch(`${srv.url}/tf/v1/providers/acme/thing/versions`)).json();
    expect(versions.versions.map((v: { version: string }) => v.version)).toEqual(['1.2.0', '1.0.0']);
    const zip = await getBytes(`${srv.url}/tf/v1/providers/acme/thing/1.2.0/linux_amd64.zip`);
    expect(zip.body.equals(linux)).toBe(true);
  });

  it('refuses path traversal', async () => {
    for (const p of ['v1/providers/acme/%252e%252e/1.0.0/linux_amd64.zip', 'v1/modules/acme/..%2f..%2f/aws/1.0.0.tar.gz', 'v1/providers/acme/thing/1.0.0/..%2f..%2fetc']) {
      const res = await fetch(`${srv.url}/tf/${p}`, { method: p.endsWith('etc') ? 'GET' : 'PUT', body: p.endsWith('etc') ? undefined : new Uint8Array(linux) });
      expect(res.status, p).toBe(400);
      expect((await res.json()).error.code, p).toBe('INVALID_PATH');
    }
  });

  it('unknown providers and versions are 404', async () => {
    for (const p of ['v1/providers/acme/nothing/versions', 'v1/providers/acme/thing/9.9.9/download/linux/amd64', 'v1/providers/acme/thing/1.2.0/download/plan9/amd64',
      'v1/providers/acme/thing/1.2.0/plan9_amd64.zip', 'h/acme/nothing/index.json', 'h/acme/thing/9.9.9.json', 'v1/modules/a/b/c/versions']) {
      const res = await fetch(`${srv.url}/tf/${p}`);
      expect(res.status, p).toBe(404);
      expect((await res.json()).error.code, p).toBe('NOT_FOUND');
    }
  });

  it('a repo without a gpg key serves the mirror but not unsigned registry downloads', async () => {
    expect((await put('v1/providers/acme/thing/1.0.0/linux_amd64.zip', linux, 'tf-nokey')).status).toBe(201);
    const dl = await fetch(`${srv.url}/tf-nokey/v1/providers/acme/thing/1.0.0/download/linux/amd64`);
    expect(dl.status).toBe(404);
    expect((await dl.json()).error.message).toMatch(/has no gpg key/);
    const r = await replayMirror({ mirror: `${srv.url}/tf-nokey`, hostname: 'x.example', ns: 'acme', type: 'thing', version: '1.0.0', platform: 'linux_amd64' });
    expect(r.zip.equals(linux)).toBe(true);
  });

  it('modules: upload .tar.gz and .zip, versions, download with X-Terraform-Get, the archive', async () => {
    const tgz = await moduleTgz({ 'main.tf': 'variable "x" {}\n', 'modules/sub/main.tf': '# sub\n' });
    const res = await put('v1/modules/acme/net/aws/1.0.0.tar.gz', tgz);
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ namespace: 'acme', name: 'net', system: 'aws', version: '1.0.0', sha256: sha256hex(tgz), size: tgz.length });
    const zip = makeZip({ 'main.tf': '# two\n' });
    expect((await put('v1/modules/acme/net/aws/2.0.0.zip', zip)).status).toBe(201);
    // terraform: discovery, versions, download (204 + X-Terraform-Get), then go-getter fetches that.
    const disco = await (await fetch(`${srv.url}/.well-known/terraform.json`)).json();
    const base = new URL(disco['modules.v1'], `${srv.url}/`).toString();
    expect(await (await fetch(`${base}acme/net/aws/versions`)).json()).toEqual({ modules: [{ source: 'acme/net/aws', versions: [{ version: '2.0.0' }, { version: '1.0.0' }] }] });
    for (const [v, body, ext] of [['1.0.0', tgz, 'tar.gz'], ['2.0.0', zip, 'zip']] as const) {
      const dl = await fetch(`${base}acme/net/aws/${v}/download`);
      expect(dl.status).toBe(204);
      const loc = dl.headers.get('x-terraform-get')!;
      expect(loc).toBe(`${srv.url}/tf/v1/modules/acme/net/aws/${v}.${ext}`);
      const got = await getBytes(loc);
      expect(got.status).toBe(200);
      expect(got.body.equals(body)).toBe(true);
    }
    expect((await put('v1/modules/acme/net/aws/1.0.0.zip', zip)).status).toBe(409);
  });

  it('refuses module archives that are not archives or escape the module directory', async () => {
    const evil = await moduleTgz({ 'main.tf': '#\n', '../../evil.tf': '#\n' });
    const res = await put('v1/modules/acme/net/aws/3.0.0.tar.gz', evil);
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toBe('module archive has a member outside the module directory: "../../evil.tf"');
    const junk = await put('v1/modules/acme/net/aws/3.0.0.tar.gz', Buffer.from('junk'));
    expect(junk.status).toBe(400);
    expect((await junk.json()).error.code).toBe('BAD_REQUEST');
    const dl = await fetch(`${srv.url}/tf/v1/modules/acme/net/aws/3.0.0/download`);
    expect(dl.status).toBe(404);
  });
});
