import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { startUpstream, type FakeUpstream } from '../../helpers/upstream.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: string) => createHash('sha256').update(b).digest('hex');

let srv: TestServer | undefined;
let up: FakeUpstream | undefined;
afterEach(async () => {
  await srv?.close();
  await up?.close();
  srv = undefined;
  up = undefined;
});

/**
 * A Debian-style mirror: files by path with a Last-Modified each, answering
 * If-Modified-Since with 304 (as deb.debian.org does); `publish` changes a file.
 */
function debianMirror(o: { lastModified?: boolean; etag?: boolean } = {}) {
  const files = new Map<string, { body: string; modified: string }>();
  const publish = (path: string, body: string, modified: string) => files.set(path, { body, modified });
  const handler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
    const f = files.get((req.url ?? '/').split('?')[0]);
    if (!f) return void res.writeHead(404).end('not found');
    const etag = `"${sha(f.body).slice(0, 16)}"`;
    const ims = req.headers['if-modified-since'];
    if ((o.etag && req.headers['if-none-match'] === etag) || (o.lastModified !== false && ims && Date.parse(ims) >= Date.parse(f.modified))) {
      return void res.writeHead(304).end();
    }
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'content-length': String(Buffer.byteLength(f.body)) };
    if (o.lastModified !== false) headers['last-modified'] = f.modified;
    if (o.etag) headers.etag = etag;
    res.writeHead(200, headers).end(f.body);
  };
  return { publish, handler };
}

async function mirrorRepo(handler: Parameters<typeof startUpstream>[0], ttl = '200ms') {
  up = await startUpstream(handler);
  srv = await startServer();
  await srv.addRepo({ name: 'debian', format: 'generic', kind: 'remote', upstream: `${up.url}/debian/`, metadata_ttl: ttl });
  return `${srv.url}/debian`;
}

const MON = 'Mon, 01 Jun 2026 10:00:00 GMT';
const TUE = 'Tue, 02 Jun 2026 10:00:00 GMT';
const PACKAGES = 'main/binary-amd64';

describe('generic remote over an apt mirror (default mutable patterns)', () => {
  it('dists/*/InRelease, Release, Release.gpg and Packages* are revalidated after metadata_ttl; by-hash and pool files stay immutable', async () => {
    const m = debianMirror();
    const v1 = `Suite: stable\nSHA256:\n ${sha('pkgs v1')} 7 ${PACKAGES}/Packages.xz\n`;
    const meta = (v: string) => ({
      'dists/stable/InRelease': `-----BEGIN PGP SIGNED MESSAGE-----\n${v}`, 'dists/stable/Release': v, 'dists/stable/Release.gpg': `sig of ${v}`,
    });
    for (const [p, b] of Object.entries(meta(v1))) m.publish(`/debian/${p}`, b, MON);
    m.publish(`/debian/dists/stable/${PACKAGES}/Packages.xz`, 'pkgs v1', MON);
    m.publish(`/debian/dists/stable/${PACKAGES}/by-hash/SHA256/${sha('pkgs v1')}`, 'pkgs v1', MON);
    m.publish('/debian/pool/main/h/hello/hello_1.0_amd64.deb', 'deb bytes', MON);
    const base = await mirrorRepo(m.handler);

    // `apt update` then `apt install hello`
    const aptGet = async (p: string) => {
      const r = await fetch(`${base}/${p}`);
      expect(r.status, p).toBe(200);
      return r.text();
    };
    const byHash = `dists/stable/${PACKAGES}/by-hash/SHA256/${sha('pkgs v1')}`;
    const all = [...Object.keys(meta(v1)), `dists/stable/${PACKAGES}/Packages.xz`, byHash, 'pool/main/h/hello/hello_1.0_amd64.deb'];
    for (const p of all) await aptGet(p);

    // The mirror publishes a new suite.
    const v2 = `Suite: stable\nSHA256:\n ${sha('pkgs v2')} 7 ${PACKAGES}/Packages.xz\n`;
    for (const [p, b] of Object.entries(meta(v2))) m.publish(`/debian/${p}`, b, TUE);
    m.publish(`/debian/dists/stable/${PACKAGES}/Packages.xz`, 'pkgs v2', TUE);
    await sleep(400);
    for (const [p, b] of Object.entries(meta(v2))) expect(await aptGet(p), p).toBe(b);
    expect(await aptGet(`dists/stable/${PACKAGES}/Packages.xz`)).toBe('pkgs v2');
    // content-named files are never asked for again
    for (const p of [byHash, 'pool/main/h/hello/hello_1.0_amd64.deb']) {
      const r = await fetch(`${base}/${p}`);
      expect(r.headers.get('x-artifact-source'), p).toBe('cache');
      await r.arrayBuffer();
      expect(up!.count(`/debian/${p}`), p).toBe(1);
    }
  });
});

describe('Last-Modified of revalidated remote files', () => {
  it('is the upstream\'s Last-Modified, so If-Modified-Since gets 304 across refetches (upstream answers 304)', async () => {
    const m = debianMirror();
    m.publish('/debian/dists/stable/InRelease', 'release v1', MON);
    const base = await mirrorRepo(m.handler);
    const first = await fetch(`${base}/dists/stable/InRelease`);
    expect(first.headers.get('x-artifact-source')).toBe('remote');
    expect(first.headers.get('last-modified')).toBe(MON); // already on the first fetch
    await first.text();
    const cached = await fetch(`${base}/dists/stable/InRelease`);
    expect(cached.headers.get('last-modified')).toBe(MON);
    await cached.text();
    for (let i = 0; i < 2; i++) {
      await sleep(300); // past metadata_ttl: revalidated upstream
      const before = up!.count('/debian/dists/stable/InRelease');
      const r = await fetch(`${base}/dists/stable/InRelease`, { headers: { 'if-modified-since': MON } });
      expect(r.status).toBe(304);
      expect(r.headers.get('last-modified')).toBe(MON);
      expect(up!.count('/debian/dists/stable/InRelease')).toBe(before + 1);
    }
    // a change upstream shows, with its new Last-Modified
    m.publish('/debian/dists/stable/InRelease', 'release v2', TUE);
    await sleep(300);
    const changed = await fetch(`${base}/dists/stable/InRelease`, { headers: { 'if-modified-since': MON } });
    expect(changed.status).toBe(200);
    expect(await changed.text()).toBe('release v2');
    const again = await fetch(`${base}/dists/stable/InRelease`, { headers: { 'if-modified-since': MON } });
    expect(again.status).toBe(200);
    expect(again.headers.get('last-modified')).toBe(TUE);
    await again.text();
  });

  it('an upstream without validators: unchanged bytes after a refetch keep the first Last-Modified', async () => {
    const m = debianMirror({ lastModified: false });
    m.publish('/debian/dists/stable/Release', 'release v1', MON);
    const base = await mirrorRepo(m.handler);
    await (await fetch(`${base}/dists/stable/Release`)).text();
    const cached = await fetch(`${base}/dists/stable/Release`);
    const lm = cached.headers.get('last-modified')!;
    expect(lm).toBeTruthy();
    await cached.text();
    await sleep(1100); // so a reset Last-Modified would differ by at least a second
    const refetched = await fetch(`${base}/dists/stable/Release`, { headers: { 'if-modified-since': lm } });
    expect(refetched.status).toBe(304);
    expect(up!.count('/debian/dists/stable/Release')).toBe(2);
    const after = await fetch(`${base}/dists/stable/Release`);
    expect(after.headers.get('last-modified')).toBe(lm);
    await after.text();
  });
});
