import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { startUpstream, type FakeUpstream } from '../../helpers/upstream.js';
import { apkGet, apkPut, buildApk, buildApkIndex, opensslVerifies, parseApkIndex, rsaKey, type BuiltApk } from './apks.js';

let srv: TestServer;
let upstream: FakeUpstream;
const mirrorKey = rsaKey('alpine-devel@lists.alpinelinux.org-6165ee59');
const files: Record<string, Buffer> = {};
const DIR = '/alpine/v3.19/main/x86_64';
let musl: BuiltApk;
let busybox: BuiltApk;
let evil: BuiltApk;
let swapped: BuiltApk;

function entryOf(p: BuiltApk, name: string, version: string, o: { C?: string } = {}): Record<string, string> {
  return { C: o.C ?? p.checksum, P: name, V: version, A: 'x86_64', S: String(p.apk.length), I: '4096', T: `${name} from the mirror`, r: 'old-name' };
}

function serve(req: IncomingMessage, res: ServerResponse) {
  const body = files[(req.url ?? '/').split('?')[0]];
  if (!body) return void res.writeHead(404).end('not found');
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
}

beforeAll(async () => {
  musl = await buildApk({ name: 'musl', version: '1.2.4-r2' });
  busybox = await buildApk({ name: 'busybox', version: '1.36.1-r15' });
  evil = await buildApk({ name: 'evil', version: '1.0-r0' });
  const other = await buildApk({ name: 'evil', version: '1.0-r0', info: [['depend', 'something-else']] });
  // Control stream as listed, data stream replaced: the control's datahash no longer matches.
  const genuine = await buildApk({ name: 'swapped', version: '2.0-r0' });
  const replaced = await buildApk({ name: 'swapped', version: '2.0-r0', payload: 'a trojan', datahash: genuine.pkginfo.match(/datahash = (\w+)/)![1] });
  swapped = { ...replaced, apk: Buffer.concat([genuine.apk.subarray(0, genuine.control.length), replaced.apk.subarray(replaced.control.length)]) };
  files[`${DIR}/swapped-2.0-r0.apk`] = swapped.apk;
  files[`${DIR}/musl-1.2.4-r2.apk`] = musl.apk;
  files[`${DIR}/busybox-1.36.1-r15.apk`] = busybox.apk;
  // The mirror serves a package whose control stream is not the one its index names.
  files[`${DIR}/evil-1.0-r0.apk`] = evil.apk;
  files[`${DIR}/APKINDEX.tar.gz`] = await buildApkIndex([
    entryOf(musl, 'musl', '1.2.4-r2'), entryOf(busybox, 'busybox', '1.36.1-r15'), entryOf(evil, 'evil', '1.0-r0', { C: other.checksum }),
    { ...entryOf(swapped, 'swapped', '2.0-r0', { C: genuine.checksum }) },
  ], mirrorKey);
  upstream = await startUpstream(serve);
  srv = await startServer({ 'remote.upstream_timeout': '1s' });
  await srv.addRepo({ name: 'ar', format: 'alpine', kind: 'remote', upstream: `${upstream.url}/alpine/` });
  await srv.addRepo({ name: 'arttl', format: 'alpine', kind: 'remote', upstream: `${upstream.url}/alpine`, metadata_ttl: '1s' });
  await srv.addRepo({ name: 'aloc', format: 'alpine', kind: 'local' });
  await srv.addRepo({ name: 'av', format: 'alpine', kind: 'virtual', members: ['aloc', 'ar'] });
  await srv.addRepo({ name: 'aallow', format: 'alpine', kind: 'virtual', members: ['aloc', 'ar'], allow_shadowed: ['musl'] });
  await srv.addRepo({ name: 'ainner', format: 'alpine', kind: 'virtual', members: ['ar'] });
  await srv.addRepo({ name: 'anested', format: 'alpine', kind: 'virtual', members: ['aloc', 'ainner'] });
});
afterAll(async () => {
  await srv?.close();
  await upstream?.close();
});

const remoteUrl = () => `${srv.url}/ar/v3.19/main`;

describe('alpine remote repo', () => {
  it('apk update gets the upstream APKINDEX as it is (signed by the mirror), then from the cache', async () => {
    const first = await apkGet(remoteUrl(), 'x86_64', 'APKINDEX.tar.gz');
    expect(first.res.status).toBe(200);
    expect(first.res.headers.get('x-artifact-source')).toBe('remote');
    expect(first.body.equals(files[`${DIR}/APKINDEX.tar.gz`])).toBe(true);
    const parsed = await parseApkIndex(first.body);
    expect(opensslVerifies(mirrorKey.publicPem, parsed.signature, parsed.signed)).toBe(true);
    const second = await apkGet(remoteUrl(), 'x86_64', 'APKINDEX.tar.gz');
    expect(second.res.headers.get('x-artifact-source')).toBe('cache');
    expect(upstream.count(`${DIR}/APKINDEX.tar.gz`)).toBe(1);
  });

  it('apk add: a package is cached forever after it verified against the index C:, one upstream request for concurrent misses', async () => {
    const got = await Promise.all([1, 2, 3].map(() => apkGet(remoteUrl(), 'x86_64', 'musl-1.2.4-r2.apk')));
    for (const g of got) {
      expect(g.res.status).toBe(200);
      expect(g.body.equals(musl.apk)).toBe(true);
    }
    expect(upstream.count(`${DIR}/musl-1.2.4-r2.apk`)).toBe(1);
    const again = await apkGet(remoteUrl(), 'x86_64', 'musl-1.2.4-r2.apk');
    expect(again.res.headers.get('x-artifact-source')).toBe('cache');
  });

  it.each([
    ['a control stream that does not match the index C:', 'evil-1.0-r0.apk', () => evil],
    ['a data stream that does not match the control stream datahash', 'swapped-2.0-r0.apk', () => swapped],
  ])('a package with %s is 502, never cached, never sent complete', async (_what, file, pkg) => {
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${remoteUrl()}/x86_64/${file}`);
      const body = await res.arrayBuffer().then((b) => Buffer.from(b), () => null);
      // Either refused outright, or the transfer breaks before its last byte.
      if (res.status === 200) expect(body?.equals(pkg().apk)).not.toBe(true);
      else expect(res.status).toBe(502);
    }
    expect(await srv.svc.meta.files.get('ar', `v3.19/main/x86_64/${file}`)).toBeNull();
    expect(upstream.count(`${DIR}/${file}`)).toBe(2);
  });

  it('a package the index does not list is 404 without asking the upstream for it', async () => {
    files[`${DIR}/unlisted-1-r0.apk`] = (await buildApk({ name: 'unlisted', version: '1-r0' })).apk;
    const { res } = await apkGet(remoteUrl(), 'x86_64', 'unlisted-1-r0.apk');
    expect(res.status).toBe(404);
    expect(upstream.count(`${DIR}/unlisted-1-r0.apk`)).toBe(0);
  });

  it('after the TTL the index is revalidated; with the upstream down the stale copy is served', async () => {
    const url = `${srv.url}/arttl/v3.19/main`;
    expect((await apkGet(url, 'x86_64', 'APKINDEX.tar.gz')).res.status).toBe(200);
    expect((await apkGet(url, 'x86_64', 'musl-1.2.4-r2.apk')).body.equals(musl.apk)).toBe(true);
    const before = upstream.count(`${DIR}/APKINDEX.tar.gz`);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await apkGet(url, 'x86_64', 'APKINDEX.tar.gz')).res.status).toBe(200);
    expect(upstream.count(`${DIR}/APKINDEX.tar.gz`)).toBe(before + 1);
    await new Promise((r) => setTimeout(r, 1100));
    upstream.handle((_req, res) => void res.writeHead(503).end('down'));
    try {
      const stale = await apkGet(url, 'x86_64', 'APKINDEX.tar.gz');
      expect(stale.res.status).toBe(200);
      expect(stale.res.headers.get('x-artifact-stale')).toBe('true');
      expect(stale.body.equals(files[`${DIR}/APKINDEX.tar.gz`])).toBe(true);
      // Cached packages still install.
      expect((await apkGet(url, 'x86_64', 'musl-1.2.4-r2.apk')).body.equals(musl.apk)).toBe(true);
    } finally {
      upstream.handle(serve);
    }
  });
});

describe('alpine virtual repo', () => {
  let localMusl: BuiltApk;
  let localTool: BuiltApk;

  beforeAll(async () => {
    // A local build of musl (another version) and a package only the local repo has.
    localMusl = await buildApk({ name: 'musl', version: '1.2.5-r0' });
    localTool = await buildApk({ name: 'corp-tool', version: '0.1-r0' });
    expect((await apkPut(`${srv.url}/aloc/v3.19/main/x86_64/musl-1.2.5-r0.apk`, localMusl.apk)).status).toBe(201);
    expect((await apkPut(`${srv.url}/aloc/v3.19/main/x86_64/corp-tool-0.1-r0.apk`, localTool.apk)).status).toBe(201);
  });

  async function merged(repo: string) {
    const { res, body } = await apkGet(`${srv.url}/${repo}/v3.19/main`, 'x86_64', 'APKINDEX.tar.gz');
    expect(res.status).toBe(200);
    const parsed = await parseApkIndex(body);
    const keyFile = (await (await fetch(`${srv.url}/${repo}/keys`)).text()).trim();
    const pem = await (await fetch(`${srv.url}/${repo}/keys/${keyFile}`)).text();
    expect(parsed.signatureName).toBe(`.SIGN.RSA.${keyFile}`);
    expect(opensslVerifies(pem, parsed.signature, parsed.signed)).toBe(true);
    return { res, parsed, pem };
  }

  it('merges members into one index signed with the virtual repo key; a local name hides the remote versions of it', async () => {
    const { res, parsed, pem } = await merged('av');
    expect(res.headers.get('x-artifact-repo')).toBe('av');
    // The remote's mirror key does not verify the virtual index.
    expect(opensslVerifies(mirrorKey.publicPem, parsed.signature, parsed.signed)).toBe(false);
    expect(pem).not.toBe(mirrorKey.publicPem);
    const byName = Object.fromEntries(parsed.entries.map((e) => [`${e.P}-${e.V}`, e]));
    expect(Object.keys(byName).sort()).toEqual(['busybox-1.36.1-r15', 'corp-tool-0.1-r0', 'evil-1.0-r0', 'musl-1.2.5-r0', 'swapped-2.0-r0']);
    expect(byName['musl-1.2.5-r0'].C).toBe(localMusl.checksum);
    expect(byName['corp-tool-0.1-r0'].C).toBe(localTool.checksum);
    expect(byName['busybox-1.36.1-r15'].C).toBe(busybox.checksum);
    // Upstream fields the server does not know are kept.
    expect(byName['busybox-1.36.1-r15'].r).toBe('old-name');
  });

  it('packages come from the member whose entry won; a shadowed remote version is not served', async () => {
    const local = await apkGet(`${srv.url}/av/v3.19/main`, 'x86_64', 'musl-1.2.5-r0.apk');
    expect(local.body.equals(localMusl.apk)).toBe(true);
    expect(local.res.headers.get('x-artifact-repo')).toBe('aloc');
    const remote = await apkGet(`${srv.url}/av/v3.19/main`, 'x86_64', 'busybox-1.36.1-r15.apk');
    expect(remote.body.equals(busybox.apk)).toBe(true);
    expect(remote.res.headers.get('x-artifact-repo')).toBe('ar');
    expect((await apkGet(`${srv.url}/av/v3.19/main`, 'x86_64', 'musl-1.2.4-r2.apk')).res.status).toBe(404);
  });

  it('allow_shadowed lets remote versions of a listed name through; nested virtual repos keep the rule', async () => {
    const allowed = (await merged('aallow')).parsed.entries.filter((e) => e.P === 'musl').map((e) => e.V).sort();
    expect(allowed).toEqual(['1.2.4-r2', '1.2.5-r0']);
    const shadowed = await apkGet(`${srv.url}/aallow/v3.19/main`, 'x86_64', 'musl-1.2.4-r2.apk');
    expect(shadowed.body.equals(musl.apk)).toBe(true);
    const nested = (await merged('anested')).parsed.entries.filter((e) => e.P === 'musl').map((e) => e.V);
    expect(nested).toEqual(['1.2.5-r0']);
    expect((await apkGet(`${srv.url}/anested/v3.19/main`, 'x86_64', 'busybox-1.36.1-r15.apk')).body.equals(busybox.apk)).toBe(true);
  });

  it('writes to the remote or a virtual repo without default_local are 405', async () => {
    const p = await buildApk({ name: 'x', version: '1-r0' });
    expect((await apkPut(`${remoteUrl()}/x86_64/x-1-r0.apk`, p.apk)).status).toBe(405);
    expect((await apkPut(`${srv.url}/av/v3.19/main/x86_64/x-1-r0.apk`, p.apk)).status).toBe(405);
  });
});
