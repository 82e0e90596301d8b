import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tgz } from '../lib/archive.js';
import { run, scratch, which } from '../lib/clients.js';
import { createRepo, deleteRepos, get, http, sha256hex, upstreamHits, type Reply } from '../lib/api.js';
import { BASE, fixture, repoName, UPSTREAM_FOR_SERVER } from '../lib/env.js';

/**
 * docker: the registry API under /v2/<repo>/<image>/. Remote: the mock serves
 * `fixtures/docker/v2/e2e/tiny/{manifests/1.0, manifests/<digest>, blobs/<digest>}`
 * with the manifest's media type as Content-Type and Docker-Content-Digest.
 */
const MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const CONFIG = 'application/vnd.docker.container.image.v1+json';
const LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
const ACCEPT = ['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json', MANIFEST].join(', ');
const digestOf = (b: Buffer) => `sha256:${sha256hex(b)}`;

/** A blob upload as docker push does it: POST a session, PATCH the bytes, PUT ?digest= to close it. */
async function pushBlobChunked(name: string, data: Buffer): Promise<string> {
  const start = await http('POST', `/v2/${name}/blobs/uploads/`);
  expect(start.status).toBe(202);
  const location = start.headers.get('location')!;
  const patch = await http('PATCH', location, { body: data, headers: { 'content-type': 'application/octet-stream' } });
  expect(patch.status).toBe(202);
  expect(patch.headers.get('range')).toBe(`0-${data.length - 1}`);
  const next = patch.headers.get('location') ?? location;
  const put = await http('PUT', `${next}${next.includes('?') ? '&' : '?'}digest=${digestOf(data)}`);
  expect(put.status).toBe(201);
  expect(put.headers.get('docker-content-digest')).toBe(digestOf(data));
  return digestOf(data);
}

/** The monolithic form: POST ?digest= with the bytes. */
async function pushBlobMonolithic(name: string, data: Buffer): Promise<string> {
  const r = await http('POST', `/v2/${name}/blobs/uploads/?digest=${digestOf(data)}`, { body: data, headers: { 'content-type': 'application/octet-stream' } });
  expect(r.status).toBe(201);
  return digestOf(data);
}

function image(tag: string) {
  const layer = tgz({ 'hello.txt': `pushed ${tag} ${randomBytes(8).toString('hex')}\n` });
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MANIFEST,
    config: { mediaType: CONFIG, size: config.length, digest: digestOf(config) },
    layers: [{ mediaType: LAYER, size: layer.length, digest: digestOf(layer) }],
  }));
  return { layer, config, manifest };
}

async function push(name: string, tag: string, img: ReturnType<typeof image>): Promise<Reply> {
  await pushBlobMonolithic(name, img.config);
  await pushBlobChunked(name, img.layer);
  return http('PUT', `/v2/${name}/manifests/${tag}`, { body: img.manifest, headers: { 'content-type': MANIFEST } });
}

describe('docker', () => {
  const local = repoName('docker-local');
  const remote = repoName('docker-remote');
  const virtual = repoName('docker-virtual');
  const fx = 'docker/v2/e2e/tiny';
  const manifest = fixture(`${fx}/manifests/1.0`);
  const manifestDigest = digestOf(manifest);
  const doc = JSON.parse(manifest.toString());
  const layerDigest: string = doc.layers[0].digest;
  const layer = fixture(`${fx}/blobs/${layerDigest}`);

  beforeAll(async () => {
    // The fixture tree is what the mock upstream serves: the tag and the digest name the same manifest.
    const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', fx);
    expect(readdirSync(join(dir, 'manifests')).sort()).toEqual(['1.0', manifestDigest]);
    await createRepo({ name: local, format: 'docker', kind: 'local' });
    await createRepo({ name: remote, format: 'docker', kind: 'remote', upstream: `${UPSTREAM_FOR_SERVER}/docker/` });
    await createRepo({ name: virtual, format: 'docker', kind: 'virtual', members: [local, remote], default_local: local });
  });
  afterAll(async () => deleteRepos([virtual, remote, local]));

  it('/v2/ answers as a registry', async () => {
    const r = await get('/v2/');
    expect(r.status).toBe(200);
    expect(r.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
  });

  it('remote: manifest by tag and a layer come from the upstream, then the cache, bytes equal to the fixture', async () => {
    const mPath = `/v2/${remote}/e2e/tiny/manifests/1.0`;
    // One upstream fetch of the manifest, by tag or by digest (a first pull GETs it by tag).
    const manifestHits = async () => (await upstreamHits(`/${fx}/manifests/${manifestDigest}`)) + (await upstreamHits(`/${fx}/manifests/1.0`));
    const mBefore = await manifestHits();
    const first = await get(mPath, { accept: ACCEPT });
    expect(first.status).toBe(200);
    expect(first.headers.get('x-artifact-source')).toBe('remote');
    expect(first.headers.get('x-artifact-repo')).toBe(remote);
    expect(first.headers.get('content-type')).toBe(MANIFEST);
    expect(first.headers.get('docker-content-digest')).toBe(manifestDigest);
    expect(first.body.equals(manifest)).toBe(true);
    const second = await get(mPath, { accept: ACCEPT });
    expect(second.status).toBe(200);
    expect(second.headers.get('x-artifact-source')).toBe('cache');
    expect(second.headers.get('docker-content-digest')).toBe(manifestDigest);
    expect(second.body.equals(manifest)).toBe(true);
    const byDigest = await get(`/v2/${remote}/e2e/tiny/manifests/${manifestDigest}`, { accept: ACCEPT });
    expect(byDigest.headers.get('x-artifact-source')).toBe('cache');
    expect(byDigest.body.equals(manifest)).toBe(true);
    expect(await manifestHits()).toBe(mBefore + 1);

    const bPath = `/v2/${remote}/e2e/tiny/blobs/${layerDigest}`;
    const bBefore = await upstreamHits(`/${fx}/blobs/${layerDigest}`);
    const b1 = await get(bPath);
    expect(b1.status).toBe(200);
    expect(b1.headers.get('x-artifact-source')).toBe('remote');
    expect(b1.headers.get('docker-content-digest')).toBe(layerDigest);
    expect(b1.body.equals(layer)).toBe(true);
    const b2 = await get(bPath);
    expect(b2.headers.get('x-artifact-source')).toBe('cache');
    expect(b2.headers.get('content-length')).toBe(String(layer.length));
    expect(b2.body.equals(layer)).toBe(true);
    const head = await http('HEAD', bPath);
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(layer.length));
    expect(await upstreamHits(`/${fx}/blobs/${layerDigest}`)).toBe(bBefore + 1);

    const miss = await get(`/v2/${remote}/e2e/tiny/manifests/9.9`, { accept: ACCEPT });
    expect(miss.status).toBe(404);
    expect(miss.json().errors[0].code).toBe('MANIFEST_UNKNOWN');
    const push = await http('POST', `/v2/${remote}/e2e/tiny/blobs/uploads/`);
    expect(push.status).toBeGreaterThanOrEqual(400);
    expect(push.json().errors[0].code).toBeTruthy();
  });

  it('local: blob uploads (chunked and monolithic) and a manifest PUT, then pull by tag and digest', async () => {
    const name = `${local}/app`;
    const img = image('v1');
    const put = await push(name, 'v1', img);
    expect(put.status).toBe(201);
    expect(put.headers.get('docker-content-digest')).toBe(digestOf(img.manifest));

    const m = await get(`/v2/${name}/manifests/v1`, { accept: ACCEPT });
    expect(m.status).toBe(200);
    expect(m.headers.get('x-artifact-source')).toBe('local');
    expect(m.headers.get('x-artifact-repo')).toBe(local);
    expect(m.headers.get('content-type')).toBe(MANIFEST);
    expect(m.headers.get('docker-content-digest')).toBe(digestOf(img.manifest));
    expect(m.body.equals(img.manifest)).toBe(true);
    expect((await get(`/v2/${name}/manifests/${digestOf(img.manifest)}`, { accept: ACCEPT })).body.equals(img.manifest)).toBe(true);

    const blob = await get(`/v2/${name}/blobs/${digestOf(img.layer)}`);
    expect(blob.status).toBe(200);
    expect(blob.body.equals(img.layer)).toBe(true);
    expect((await get(`/v2/${name}/tags/list`)).json()).toEqual({ name, tags: ['v1'] });

    // A manifest naming a blob this repo does not hold is refused.
    const orphan = image('orphan');
    const bad = await http('PUT', `/v2/${name}/manifests/orphan`, { body: orphan.manifest, headers: { 'content-type': MANIFEST } });
    expect(bad.status).toBe(400);
    expect(bad.json().errors[0].code).toBe('MANIFEST_BLOB_UNKNOWN');
    // A blob PUT whose digest does not match its bytes keeps nothing.
    const start = await http('POST', `/v2/${name}/blobs/uploads/`);
    const wrong = await http('PUT', `${start.headers.get('location')}?digest=${digestOf(Buffer.from('other'))}`, { body: randomBytes(100) });
    expect(wrong.status).toBe(400);
    expect(wrong.json().errors[0].code).toBe('DIGEST_INVALID');
    expect((await http('HEAD', `/v2/${name}/blobs/${digestOf(Buffer.from('other'))}`)).status).toBe(404);
  });

  it('virtual: manifests and blobs resolve through the members in order; pushes land in default_local', async () => {
    const theirs = await get(`/v2/${virtual}/e2e/tiny/manifests/1.0`, { accept: ACCEPT });
    expect(theirs.status).toBe(200);
    expect(theirs.headers.get('x-artifact-repo')).toBe(remote);
    expect(theirs.headers.get('docker-content-digest')).toBe(manifestDigest);
    expect(theirs.body.equals(manifest)).toBe(true);
    const theirBlob = await get(`/v2/${virtual}/e2e/tiny/blobs/${layerDigest}`);
    expect(theirBlob.headers.get('x-artifact-repo')).toBe(remote);
    expect(theirBlob.body.equals(layer)).toBe(true);

    const img = image('v2');
    const put = await push(`${virtual}/app`, 'v2', img);
    expect(put.status).toBe(201);
    const mine = await get(`/v2/${virtual}/app/manifests/v2`, { accept: ACCEPT });
    expect(mine.status).toBe(200);
    expect(mine.headers.get('x-artifact-repo')).toBe(local);
    expect(mine.body.equals(img.manifest)).toBe(true);
    const direct = await get(`/v2/${local}/app/manifests/v2`, { accept: ACCEPT });
    expect(direct.headers.get('x-artifact-source')).toBe('local');
    expect(direct.body.equals(img.manifest)).toBe(true);

    // The local member shadows nothing it does not have: e2e/tiny is only in the remote.
    expect((await get(`/v2/${local}/e2e/tiny/manifests/1.0`, { accept: ACCEPT })).status).toBe(404);
    expect((await get(`/v2/${virtual}/e2e/tiny/manifests/9.9`, { accept: ACCEPT })).status).toBe(404);
  });

  it.skipIf(!which('skopeo'))('real client: skopeo copies the remote image through the virtual into the local repo, then pulls it', () => {
    const tmp = scratch('docker');
    try {
      const host = new URL(BASE).host;
      const skopeo = (args: string[]) => run('skopeo', ['--insecure-policy', ...args]);
      skopeo(['copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--preserve-digests',
        `docker://${host}/${virtual}/e2e/tiny:1.0`, `docker://${host}/${virtual}/copied:1.0`]);
      const out = join(tmp.dir, 'out');
      skopeo(['copy', '--src-tls-verify=false', `docker://${host}/${local}/copied:1.0`, `dir:${out}`]);
      expect(readFileSync(join(out, 'manifest.json')).equals(manifest)).toBe(true);
      expect(readFileSync(join(out, layerDigest.slice('sha256:'.length))).equals(layer)).toBe(true);
    } finally {
      tmp.done();
    }
  });
});
