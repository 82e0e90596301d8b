import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upstreamImage } from '../../../src/formats/docker/remote-auth.js';
import { startServer, type TestServer } from '../../helpers/server.js';
import { Layout, type Blob } from './oci-layout.js';
import { startRegistry, type Registry } from './registry.js';
import { closeServer, skopeo, TLS, which } from './util.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('docker hub names', () => {
  it('adds library/ to single-segment names only for Docker Hub', () => {
    const hub = { name: 'h', format: 'docker', kind: 'remote' as const, upstream: 'https://registry-1.docker.io/', options: {}, createdAt: 0 };
    expect(upstreamImage(hub, 'alpine')).toBe('library/alpine');
    expect(upstreamImage(hub, 'bitnami/redis')).toBe('bitnami/redis');
    expect(upstreamImage({ ...hub, upstream: 'https://ghcr.io/' }, 'alpine')).toBe('alpine');
    // a mirror of Docker Hub under another name says so with the docker_hub option
    expect(upstreamImage({ ...hub, upstream: 'https://hub-mirror.example/', options: { docker_hub: true } }, 'alpine')).toBe('library/alpine');
    expect(upstreamImage({ ...hub, upstream: 'https://hub-mirror.example/', options: { docker_hub: true } }, 'bitnami/redis')).toBe('bitnami/redis');
  });
});

describe.skipIf(!which('docker-registry') || !which('skopeo'))('docker remote repo against docker-registry', () => {
  let reg: Registry;
  let srv: TestServer;
  let tmp: string;
  let v1: Blob;
  let layout: Layout;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'docker-remote-'));
    reg = await startRegistry();
    layout = new Layout(join(tmp, 'img'));
    v1 = await layout.image({ layers: 2, layerSize: 100_000, seed: 'v1' });
    await layout.write({ v1 });
    await skopeo('copy', ...TLS, '--preserve-digests', `oci:${layout.dir}:v1`, `docker://${reg.host}/team/app:v1`);
    srv = await startServer();
    // A TTL longer than a skopeo push to the upstream takes on a loaded machine, so "still fresh" holds.
    await srv.addRepo({ name: 'dhub', format: 'docker', kind: 'remote', upstream: reg.url, metadata_ttl: '4s' });
  });
  afterAll(async () => {
    if (srv) await closeServer(srv);
    await reg?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('pulls through, digest-equal, and serves blobs from the cache afterwards', async () => {
    const out = join(tmp, 'out1');
    await skopeo('copy', ...TLS, '--preserve-digests', `docker://${srv.host}/dhub/team/app:v1`, `oci:${out}:v1`);
    expect((await readdir(join(out, 'blobs', 'sha256'))).sort()).toEqual((await readdir(join(layout.dir, 'blobs', 'sha256'))).sort());
    const layer = [...layout.blobs.keys()][0];
    const res = await fetch(`${srv.url}/v2/dhub/team/app/blobs/${layer}`);
    expect(res.headers.get('x-artifact-source')).toBe('cache');
    expect(res.headers.get('docker-content-digest')).toBe(layer);
    expect(sha(Buffer.from(await res.arrayBuffer()))).toBe(layer);
    const m = await fetch(`${srv.url}/v2/dhub/team/app/manifests/v1`);
    expect(m.headers.get('docker-content-digest')).toBe(v1.digest);
    const tags = await (await fetch(`${srv.url}/v2/dhub/team/app/tags/list`)).json();
    expect(tags.tags).toEqual(['v1']);
  });

  it('revalidates a tag after metadata_ttl and sees it move', async () => {
    const l2 = new Layout(join(tmp, 'img2'));
    const v2 = await l2.image({ layers: 1, seed: 'v2' });
    await l2.write({ v1: v2 });
    // Revalidated now (the upstream still has v1), so the TTL runs from here.
    expect((await fetch(`${srv.url}/v2/dhub/team/app/manifests/v1`, { method: 'HEAD' })).headers.get('docker-content-digest')).toBe(v1.digest);
    await skopeo('copy', ...TLS, `oci:${l2.dir}:v1`, `docker://${reg.host}/team/app:v1`);
    const within = await fetch(`${srv.url}/v2/dhub/team/app/manifests/v1`, { method: 'HEAD' });
    expect(within.headers.get('docker-content-digest')).toBe(v1.digest); // still fresh: no upstream call
    await new Promise((r) => setTimeout(r, 4100));
    const after = await fetch(`${srv.url}/v2/dhub/team/app/manifests/v1`);
    expect(after.headers.get('docker-content-digest')).toBe(v2.digest);
    const out = join(tmp, 'out2');
    await skopeo('copy', ...TLS, `docker://${srv.host}/dhub/team/app:v1`, `oci:${out}:v1`);
  });

  it('unknown tags and blobs are the spec errors', async () => {
    const res = await fetch(`${srv.url}/v2/dhub/team/app/manifests/nope`);
    expect(res.status).toBe(404);
    expect((await res.json()).errors[0].code).toBe('MANIFEST_UNKNOWN');
    const b = await fetch(`${srv.url}/v2/dhub/team/app/blobs/${sha('nothing')}`);
    expect(b.status).toBe(404);
    expect((await b.json()).errors[0].code).toBe('BLOB_UNKNOWN');
  });

  it('still resolves cached tags when the upstream is down', async () => {
    await reg.close();
    await new Promise((r) => setTimeout(r, 4100)); // past metadata_ttl: a revalidation is due and fails
    const out = join(tmp, 'out3');
    await skopeo('copy', ...TLS, `docker://${srv.host}/dhub/team/app:v1`, `oci:${out}:v1`);
    const m = await fetch(`${srv.url}/v2/dhub/team/app/manifests/v1`);
    expect(m.status).toBe(200);
    expect(m.headers.get('x-artifact-stale')).toBe('true');
    const miss = await fetch(`${srv.url}/v2/dhub/team/other/manifests/v1`);
    expect(miss.status).toBeGreaterThanOrEqual(502);
  });
});

describe.skipIf(!which('docker-registry') || !which('skopeo') || !which('openssl'))('docker remote repo against a token-auth registry', () => {
  let reg: Registry & { tokenRequests?: { user?: string; scope?: string }[] };
  let srv: TestServer;
  let tmp: string;
  let pub: Blob;
  let priv: Blob;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'docker-token-'));
    reg = await startRegistry({ token: { user: 'alice', password: 's3cret', anonymousPull: ['pub/'] } });
    const l = new Layout(join(tmp, 'img'));
    pub = await l.image({ seed: 'pub' });
    priv = await l.image({ seed: 'priv' });
    await l.write({ pub, priv });
    await skopeo('copy', ...TLS, '--dest-creds', 'alice:s3cret', `oci:${l.dir}:pub`, `docker://${reg.host}/pub/app:1`);
    await skopeo('copy', ...TLS, '--dest-creds', 'alice:s3cret', `oci:${l.dir}:priv`, `docker://${reg.host}/priv/app:1`);
    srv = await startServer();
    await srv.addRepo({ name: 'anon', format: 'docker', kind: 'remote', upstream: reg.url });
    await srv.addRepo({ name: 'authed', format: 'docker', kind: 'remote', upstream: reg.url, username: 'alice', password: 's3cret' });
  });
  afterAll(async () => {
    if (srv) await closeServer(srv);
    await reg?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('follows the Bearer challenge anonymously', async () => {
    const out = join(tmp, 'a');
    await skopeo('copy', ...TLS, `docker://${srv.host}/anon/pub/app:1`, `oci:${out}:1`);
    const m = await fetch(`${srv.url}/v2/anon/pub/app/manifests/1`);
    expect(m.headers.get('docker-content-digest')).toBe(pub.digest);
    expect(reg.tokenRequests!.some((r) => r.user === undefined && r.scope === 'repository:pub/app:pull')).toBe(true);
  });

  it('uses configured credentials for the token', async () => {
    const out = join(tmp, 'b');
    await skopeo('copy', ...TLS, `docker://${srv.host}/authed/priv/app:1`, `oci:${out}:1`);
    const m = await fetch(`${srv.url}/v2/authed/priv/app/manifests/1`);
    expect(m.headers.get('docker-content-digest')).toBe(priv.digest);
    expect(reg.tokenRequests!.some((r) => r.user === 'alice' && r.scope === 'repository:priv/app:pull')).toBe(true);
  });

  it('without credentials a private image is refused', async () => {
    const m = await fetch(`${srv.url}/v2/anon/priv/app/manifests/1`);
    // the upstream's 401 is an upstream failure with nothing cached: 502, in the registry's error shape
    expect(m.status).toBe(502);
    expect(await m.json()).toEqual({ errors: [{ code: 'UNAVAILABLE', message: 'upstream refused access (401)', detail: null }] });
  });
});
