import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import {
  detachedSig, expectedH1, getBytes, gpgKey, gpgVerify, HAVE_GPG, keyIdOf, makeZip, moduleTgz, providerZip, replayMirror, replayProviderInit, sha256hex,
} from './terraform.js';

const ENV = 'ARTIFACTAPI_TEST_TF_VIRTUAL_KEY';
let srv: TestServer;
let up: FastifyInstance;
let upUrl: string;
let upHost: string;
let upKey: { privateKey: string; publicKey: string };
let otherKey: { privateKey: string; publicKey: string };
let localKey: { privateKey: string; publicKey: string };
const hits = new Map<string, number>();
const hit = (p: string) => hits.get(p) ?? 0;

/** Provider versions the fake registry has: platforms, and what goes wrong with some of them. */
const RELEASES: Record<string, { platforms: string[]; badSig?: boolean; tampered?: boolean }> = {
  '2.0.0': { platforms: ['linux_amd64', 'darwin_arm64'] },
  '1.0.0': { platforms: ['linux_amd64'] },
  '3.0.0': { platforms: ['linux_amd64'], badSig: true },
  '4.0.0': { platforms: ['linux_amd64'], tampered: true },
};
const zips = new Map<string, Buffer>();
const files = new Map<string, Buffer>();
let netTgz: Buffer;
let netZip: Buffer;

/** A registry as terraform's registry protocol describes it, with its own signing key, served by fastify on 127.0.0.1:0. */
async function startRegistry(): Promise<void> {
  for (const [v, r] of Object.entries(RELEASES)) {
    const lines: string[] = [];
    for (const p of r.platforms) {
      const name = `terraform-provider-demo_${v}_${p}.zip`;
      const zip = providerZip('demo', v, `upstream ${p}`);
      zips.set(`${v}/${p}`, zip);
      files.set(`/files/${name}`, r.tampered ? providerZip('demo', v, 'tampered!') : zip);
      lines.push(`${sha256hex(zip)}  ${name}\n`);
    }
    const sums = Buffer.from(lines.join(''));
    files.set(`/files/terraform-provider-demo_${v}_SHA256SUMS`, sums);
    files.set(`/files/terraform-provider-demo_${v}_SHA256SUMS.sig`, await detachedSig(r.badSig ? otherKey.privateKey : upKey.privateKey, sums));
  }
  netTgz = await moduleTgz({ 'main.tf': '# net 1.0.0\n' });
  netZip = makeZip({ 'modules/vpc/main.tf': '# vpc\n' });
  files.set('/files/net-1.0.0.tar.gz', netTgz);
  files.set('/files/net-1.2.0.zip', netZip);

  up = Fastify();
  up.addHook('onRequest', async (req) => { hits.set(req.url, (hits.get(req.url) ?? 0) + 1); });
  up.get('/.well-known/terraform.json', async () => ({ 'providers.v1': '/registry/v1/providers/', 'modules.v1': '/registry/v1/modules/' }));
  up.get('/registry/v1/providers/hashicorp/demo/versions', async () => ({
    versions: Object.entries(RELEASES).map(([version, r]) => ({
      version, protocols: ['5.0'], platforms: r.platforms.map((p) => ({ os: p.split('_')[0], arch: p.split('_')[1] })),
    })),
  }));
  up.get<{ Params: { v: string; os: string; arch: string } }>('/registry/v1/providers/hashicorp/demo/:v/download/:os/:arch', async (req, reply) => {
    const { v, os, arch } = req.params;
    const zip = zips.get(`${v}/${os}_${arch}`);
    if (!zip) return reply.code(404).send({ errors: ['Not Found'] });
    return {
      protocols: ['5.0'], os, arch, filename: `terraform-provider-demo_${v}_${os}_${arch}.zip`,
      download_url: `${upUrl}/files/terraform-provider-demo_${v}_${os}_${arch}.zip`,
      shasums_url: `/files/terraform-provider-demo_${v}_SHA256SUMS`,
      shasums_signature_url: `${upUrl}/files/terraform-provider-demo_${v}_SHA256SUMS.sig`,
      shasum: sha256hex(zip),
      signing_keys: { gpg_public_keys: [{ key_id: await keyIdOf(upKey.publicKey), ascii_armor: upKey.publicKey, trust_signature: '', source: 'Upstream', source_url: null }] },
    };
  });
  up.get('/registry/v1/modules/hashicorp/net/aws/versions', async () => ({ modules: [{ versions: [{ version: '1.0.0' }, { version: '1.1.0' }, { version: '1.2.0' }] }] }));
  up.get<{ Params: { v: string } }>('/registry/v1/modules/hashicorp/net/aws/:v/download', async (req, reply) => {
    const loc = { '1.0.0': '/files/net-1.0.0.tar.gz', '1.1.0': 'git::https://example.com/net.git?ref=v1.1.0', '1.2.0': `${upUrl}/files/net-1.2.0.zip//modules/vpc` }[req.params.v];
    if (!loc) return reply.code(404).send({ errors: ['Not Found'] });
    return reply.code(204).header('x-terraform-get', loc).send();
  });
  up.get('/files/*', async (req, reply) => {
    const body = files.get(req.url.split('?')[0]);
    if (!body) return reply.code(404).send('not found');
    return reply.header('content-type', 'application/octet-stream').send(body);
  });
  upUrl = await up.listen({ host: '127.0.0.1', port: 0 });
  upHost = new URL(upUrl).host;
}

beforeAll(async () => {
  [upKey, otherKey, localKey] = await Promise.all([gpgKey('upstream-registry'), gpgKey('someone-else'), gpgKey('local-signer')]);
  await startRegistry();
  process.env[ENV] = localKey.privateKey;
  srv = await startServer({ 'terraform.default_repo': 'tfv' });
  await srv.addRepo({ name: 'tfr', format: 'terraform', kind: 'remote', upstream: upUrl, metadata_ttl: '1s' });
  await srv.addRepo({ name: 'tfl', format: 'terraform', kind: 'local', gpg_key_env: ENV });
  await srv.addRepo({ name: 'tfv', format: 'terraform', kind: 'virtual', members: ['tfl', 'tfr'], allow_shadowed: ['hashicorp/demo', 'hashicorp/net/aws'] });
  await srv.addRepo({ name: 'tfsafe', format: 'terraform', kind: 'virtual', members: ['tfr', 'tfl'] });
}, 60_000);
afterAll(async () => {
  await srv?.close();
  await up?.close();
  delete process.env[ENV];
});

const base = (repo: string) => `${srv.url}/${repo}/v1/providers/`;

describe.skipIf(!HAVE_GPG)('terraform remote repo', () => {
  it('replays terraform init through the remote: URLs rewritten to this server, the upstream key passed through and verifying', async () => {
    const r = await replayProviderInit({ host: srv.url, providersBase: base('tfr'), ns: 'hashicorp', type: 'demo', version: '2.0.0', os: 'linux', arch: 'amd64' });
    expect(r.zip.equals(zips.get('2.0.0/linux_amd64')!)).toBe(true);
    expect(r.keyId).toBe(await keyIdOf(upKey.publicKey));
    expect(r.download).toMatchObject({
      download_url: `${srv.url}/tfr/v1/providers/hashicorp/demo/2.0.0/linux_amd64.zip`,
      shasums_url: `${srv.url}/tfr/v1/providers/hashicorp/demo/2.0.0/linux_amd64/SHA256SUMS`,
      shasums_signature_url: `${srv.url}/tfr/v1/providers/hashicorp/demo/2.0.0/linux_amd64/SHA256SUMS.sig`,
      filename: 'terraform-provider-demo_2.0.0_linux_amd64.zip', shasum: sha256hex(zips.get('2.0.0/linux_amd64')!),
    });
    expect((r.download.signing_keys as any).gpg_public_keys[0].ascii_armor).toBe(upKey.publicKey);
    expect(hit('/files/terraform-provider-demo_2.0.0_linux_amd64.zip')).toBe(1);
    const again = await getBytes(`${srv.url}/tfr/v1/providers/hashicorp/demo/2.0.0/linux_amd64.zip`);
    expect(again.headers.get('x-artifact-source')).toBe('cache');
    expect(hit('/files/terraform-provider-demo_2.0.0_linux_amd64.zip')).toBe(1);
  });

  it('concurrent misses of one zip make one upstream request', async () => {
    const url = `${srv.url}/tfr/v1/providers/hashicorp/demo/2.0.0/darwin_arm64.zip`;
    const all = await Promise.all(Array.from({ length: 6 }, () => getBytes(url)));
    for (const r of all) {
      expect(r.status).toBe(200);
      expect(r.body.equals(zips.get('2.0.0/darwin_arm64')!)).toBe(true);
    }
    expect(hit('/files/terraform-provider-demo_2.0.0_darwin_arm64.zip')).toBe(1);
  });

  it('a SHA256SUMS not signed by a listed key: the zip is refused (502), never fetched, nothing cached', async () => {
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${srv.url}/tfr/v1/providers/hashicorp/demo/3.0.0/linux_amd64.zip`);
      expect(res.status).toBe(502);
      expect((await res.json()).error).toEqual({ code: 'UPSTREAM_FAILED', message: "the upstream's SHA256SUMS for hashicorp/demo 3.0.0 is not signed by a key it lists" });
    }
    expect(hit('/files/terraform-provider-demo_3.0.0_linux_amd64.zip')).toBe(0);
    expect(await srv.svc.meta.files.get('tfr', 'v1/providers/hashicorp/demo/3.0.0/linux_amd64.zip')).toBeNull();
  });

  it('a zip whose bytes differ from the signed SHA256SUMS: 502, nothing cached', async () => {
    // A first fetch streams to the client while it is verified: the mismatch cuts the transfer
    // before its last byte (the client never holds a complete bad zip), and nothing is cached.
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${srv.url}/tfr/v1/providers/hashicorp/demo/4.0.0/linux_amd64.zip`);
      if (res.status === 200) await expect(res.arrayBuffer()).rejects.toThrow();
      else expect(res.status).toBe(502);
      expect(await srv.svc.meta.files.get('tfr', 'v1/providers/hashicorp/demo/4.0.0/linux_amd64.zip')).toBeNull();
    }
    expect(hit('/files/terraform-provider-demo_4.0.0_linux_amd64.zip')).toBe(2);
  });

  it('serves the network mirror for the upstream host: zh: from the signed data, h1: once the zip is cached; another host is 404', async () => {
    const r = await replayMirror({ mirror: `${srv.url}/tfr`, hostname: upHost, ns: 'hashicorp', type: 'demo', version: '2.0.0', platform: 'darwin_arm64' });
    // Both platforms of 2.0.0 were fetched above, so both are cached and hashed.
    expect(r.archive.hashes).toEqual([expectedH1(zips.get('2.0.0/darwin_arm64')!), `zh:${sha256hex(zips.get('2.0.0/darwin_arm64')!)}`]);
    const v1 = await (await fetch(`${srv.url}/tfr/${upHost}/hashicorp/demo/1.0.0.json`)).json();
    expect(v1.archives.linux_amd64.hashes).toEqual([`zh:${sha256hex(zips.get('1.0.0/linux_amd64')!)}`]);
    expect(Object.keys(r.versions).sort()).toEqual(['1.0.0', '2.0.0', '3.0.0', '4.0.0']);
    expect(r.zip.equals(zips.get('2.0.0/darwin_arm64')!)).toBe(true);
    const other = await fetch(`${srv.url}/tfr/registry.terraform.io/hashicorp/demo/index.json`);
    expect(other.status).toBe(404);
  });

  it('modules: X-Terraform-Get rewritten for archives (cached, subdir kept), a git source passed through untouched', async () => {
    const mbase = `${srv.url}/tfr/v1/modules/hashicorp/net/aws`;
    expect(await (await fetch(`${mbase}/versions`)).json()).toEqual({
      modules: [{ source: 'hashicorp/net/aws', versions: [{ version: '1.2.0' }, { version: '1.1.0' }, { version: '1.0.0' }] }],
    });
    const d1 = await fetch(`${mbase}/1.0.0/download`);
    expect(d1.status).toBe(204);
    expect(d1.headers.get('x-terraform-get')).toBe(`${mbase}/1.0.0.tar.gz`);
    const a1 = await getBytes(`${mbase}/1.0.0.tar.gz`);
    expect(a1.status).toBe(200);
    expect(a1.body.equals(netTgz)).toBe(true);
    const git = await fetch(`${mbase}/1.1.0/download`);
    expect(git.status).toBe(204);
    expect(git.headers.get('x-terraform-get')).toBe('git::https://example.com/net.git?ref=v1.1.0');
    expect((await fetch(`${mbase}/1.1.0.tar.gz`)).status).toBe(404);
    const d3 = await fetch(`${mbase}/1.2.0/download`);
    expect(d3.headers.get('x-terraform-get')).toBe(`${mbase}/1.2.0.zip//modules/vpc`);
    const a3 = await getBytes(`${mbase}/1.2.0.zip`);
    expect(a3.body.equals(netZip)).toBe(true);
    expect((await fetch(`${mbase}/9.9.9/download`)).status).toBe(404);
  });

});

describe.skipIf(!HAVE_GPG)('terraform virtual repo', () => {
  const localDemo2 = providerZip('demo', '2.0.0', 'local build');
  it('merges versions lists, first member wins per version (allow_shadowed), and terraform init works through it', async () => {
    const put = (path: string, body: Buffer) => fetch(`${srv.url}/tfl/${path}`, { method: 'PUT', body: new Uint8Array(body) });
    expect((await put('v1/providers/hashicorp/demo/2.0.0/linux_amd64.zip', localDemo2)).status).toBe(201);
    expect((await put('v1/providers/hashicorp/demo/9.0.0/linux_amd64.zip', providerZip('demo', '9.0.0'))).status).toBe(201);
    expect((await put('v1/providers/acme/own/1.0.0/linux_amd64.zip', providerZip('own', '1.0.0'))).status).toBe(201);
    const versions = await fetch(`${base('tfv')}hashicorp/demo/versions`);
    expect(versions.status).toBe(200);
    const list = (await versions.json()).versions as { version: string; platforms: unknown[] }[];
    expect(list.map((v) => v.version)).toEqual(['9.0.0', '4.0.0', '3.0.0', '2.0.0', '1.0.0']);
    // 2.0.0 is the local member's: its single platform, its bytes, its key.
    expect(list.find((v) => v.version === '2.0.0')!.platforms).toEqual([{ os: 'linux', arch: 'amd64' }]);
    // Through the host-root discovery (terraform.default_repo = tfv), as terraform init would.
    const mine = await replayProviderInit({ host: srv.url, ns: 'hashicorp', type: 'demo', version: '2.0.0', os: 'linux', arch: 'amd64' });
    expect(mine.zip.equals(localDemo2)).toBe(true);
    expect(mine.keyId).toBe(await keyIdOf(localKey.publicKey));
    expect(mine.download.download_url).toBe(`${srv.url}/tfv/v1/providers/hashicorp/demo/2.0.0/linux_amd64.zip`);
    const theirs = await replayProviderInit({ host: srv.url, ns: 'hashicorp', type: 'demo', version: '1.0.0', os: 'linux', arch: 'amd64' });
    expect(theirs.zip.equals(zips.get('1.0.0/linux_amd64')!)).toBe(true);
    expect(theirs.keyId).toBe(await keyIdOf(upKey.publicKey));
    expect(theirs.download.shasums_url).toBe(`${srv.url}/tfv/v1/providers/hashicorp/demo/1.0.0/linux_amd64/SHA256SUMS`);
    const zip = await fetch(`${srv.url}/tfv/v1/providers/hashicorp/demo/1.0.0/linux_amd64.zip`);
    expect(zip.headers.get('x-artifact-repo')).toBe('tfr');
    const own = await replayProviderInit({ host: srv.url, ns: 'acme', type: 'own', version: '1.0.0', os: 'linux', arch: 'amd64' });
    expect(own.keyId).toBe(await keyIdOf(localKey.publicKey));
  });

  it('without allow_shadowed, a provider a local member publishes hides the remote versions of it', async () => {
    const list = (await (await fetch(`${base('tfsafe')}hashicorp/demo/versions`)).json()).versions as { version: string }[];
    expect(list.map((v) => v.version)).toEqual(['9.0.0', '2.0.0']);
    expect((await fetch(`${base('tfsafe')}hashicorp/demo/1.0.0/download/linux/amd64`)).status).toBe(404);
    const dl = await (await fetch(`${base('tfsafe')}hashicorp/demo/2.0.0/download/linux/amd64`)).json();
    expect(dl.shasum).toBe(sha256hex(localDemo2));
  });

  it('serves the network mirror from the merged data', async () => {
    const r = await replayMirror({ mirror: `${srv.url}/tfv`, hostname: upHost, ns: 'hashicorp', type: 'demo', version: '2.0.0', platform: 'linux_amd64' });
    expect(r.zip.equals(localDemo2)).toBe(true);
    expect(r.archive.url).toBe(`${srv.url}/tfv/v1/providers/hashicorp/demo/2.0.0/linux_amd64.zip`);
    const remote = await replayMirror({ mirror: `${srv.url}/tfv`, hostname: upHost, ns: 'hashicorp', type: 'demo', version: '1.0.0', platform: 'linux_amd64' });
    expect(remote.zip.equals(zips.get('1.0.0/linux_amd64')!)).toBe(true);
  });

  it('modules through the virtual repo: merged versions, X-Terraform-Get under the virtual URL', async () => {
    const tgz = await moduleTgz({ 'main.tf': '# local net 2.0.0\n' });
    expect((await fetch(`${srv.url}/tfl/v1/modules/hashicorp/net/aws/2.0.0.tar.gz`, { method: 'PUT', body: new Uint8Array(tgz) })).status).toBe(201);
    const mbase = `${srv.url}/tfv/v1/modules/hashicorp/net/aws`;
    const versions = await (await fetch(`${mbase}/versions`)).json();
    expect(versions.modules[0].versions.map((v: { version: string }) => v.version)).toEqual(['2.0.0', '1.2.0', '1.1.0', '1.0.0']);
    for (const [v, body, ext] of [['2.0.0', tgz, 'tar.gz'], ['1.0.0', netTgz, 'tar.gz']] as const) {
      const dl = await fetch(`${mbase}/${v}/download`);
      expect(dl.status).toBe(204);
      expect(dl.headers.get('x-terraform-get')).toBe(`${mbase}/${v}.${ext}`);
      const got = await getBytes(`${mbase}/${v}.${ext}`);
      expect(got.body.equals(body)).toBe(true);
    }
  });

  it('writes to a virtual repo without default_local are 405; to a remote 405', async () => {
    for (const repo of ['tfv', 'tfr']) {
      const res = await fetch(`${srv.url}/${repo}/v1/providers/acme/x/1.0.0/linux_amd64.zip`, { method: 'PUT', body: new Uint8Array(providerZip('x', '1.0.0')) });
      expect(res.status, repo).toBe(405);
    }
  });

  it('with the upstream gone, cached zips and (stale) versions are still served', async () => {
    await new Promise((r) => setTimeout(r, 1100));
    await up.close();
    const zip = await getBytes(`${srv.url}/tfr/v1/providers/hashicorp/demo/2.0.0/linux_amd64.zip`);
    expect(zip.status).toBe(200);
    expect(zip.headers.get('x-artifact-source')).toBe('cache');
    expect(zip.body.equals(zips.get('2.0.0/linux_amd64')!)).toBe(true);
    const versions = await fetch(`${srv.url}/tfr/v1/providers/hashicorp/demo/versions`);
    expect(versions.status).toBe(200);
    expect(versions.headers.get('x-artifact-stale')).toBe('true');
    const sums = await getBytes(`${srv.url}/tfv/v1/providers/hashicorp/demo/1.0.0/linux_amd64/SHA256SUMS`);
    const sig = await getBytes(`${srv.url}/tfv/v1/providers/hashicorp/demo/1.0.0/linux_amd64/SHA256SUMS.sig`);
    expect(gpgVerify(upKey.publicKey, sig.body, sums.body)).toBe(await keyIdOf(upKey.publicKey));
  });
});
