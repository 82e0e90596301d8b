import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeServer, uploadPartsLeft } from './util.js';
import { startServer, type TestServer } from '../../helpers/server.js';

let srv: TestServer;
const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

beforeAll(async () => {
  srv = await startServer({ 'limits.metadata_body': '64KiB' });
  await srv.addRepo({ name: 'reg', format: 'docker', kind: 'local' });
  await srv.addRepo({ name: 'reg2', format: 'docker', kind: 'local' });
  await srv.addRepo({ name: 'dremote', format: 'docker', kind: 'remote', upstream: 'http://127.0.0.1:9/' });
});
afterAll(() => closeServer(srv));

const v2 = (p: string, init?: RequestInit) => fetch(`${srv.url}/v2/${p}`, init);

async function pushBlob(name: string, body: Buffer): Promise<string> {
  const d = sha(body);
  const res = await v2(`${name}/blobs/uploads/?digest=${d}`, { method: 'POST', body: new Uint8Array(body), headers: { 'content-type': 'application/octet-stream' } });
  expect(res.status).toBe(201);
  return d;
}

async function pushImage(name: string, tag: string, extra: Record<string, unknown> = {}) {
  const layer = randomBytes(5000);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rand: randomBytes(4).toString('hex') }));
  const ld = await pushBlob(name, layer);
  const cd = await pushBlob(name, config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cd, size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: ld, size: layer.length }], ...extra,
  }));
  const res = await v2(`${name}/manifests/${tag}`, { method: 'PUT', body: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
  expect(res.status).toBe(201);
  expect(res.headers.get('docker-content-digest')).toBe(sha(manifest));
  return { layer, ld, cd, manifest, md: sha(manifest) };
}

describe('docker registry protocol (local)', () => {
  it('answers /v2/ with the API version header', async () => {
    const res = await v2('');
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
  });

  it('gives spec error bodies and statuses', async () => {
    const res = await v2(`reg/none/manifests/latest`);
    expect(res.status).toBe(404);
    expect((await res.json()).errors[0].code).toBe('MANIFEST_UNKNOWN');
    const b = await v2(`reg/none/blobs/${sha('x')}`);
    expect(b.status).toBe(404);
    expect((await b.json()).errors[0].code).toBe('BLOB_UNKNOWN');
    const n = await v2(`nosuchrepo/img/tags/list`);
    expect(n.status).toBe(404);
    expect((await n.json()).errors[0].code).toBe('NAME_UNKNOWN');
    const bad = await v2(`reg/UPPER/tags/list`);
    expect(bad.status).toBe(400);
    expect((await bad.json()).errors[0].code).toBe('NAME_INVALID');
    const push = await v2(`dremote/x/blobs/uploads/`, { method: 'POST' });
    expect(push.status).toBe(405);
    expect((await push.json()).errors[0].code).toBe('UNSUPPORTED');
  });

  it('chunked upload: POST, PATCH x2 with Content-Range, status, out-of-order 416, PUT', async () => {
    const body = randomBytes(200_000);
    const start = await v2('reg/chunky/blobs/uploads/', { method: 'POST' });
    expect(start.status).toBe(202);
    const loc = start.headers.get('location')!;
    expect(start.headers.get('docker-upload-uuid')).toBeTruthy();
    expect(start.headers.get('range')).toBe('0-0');
    const p1 = await fetch(`${srv.url}${loc}`, { method: 'PATCH', body: body.subarray(0, 100_000), headers: { 'content-range': '0-99999' } });
    expect(p1.status).toBe(202);
    expect(p1.headers.get('range')).toBe('0-99999');
    const wrong = await fetch(`${srv.url}${loc}`, { method: 'PATCH', body: body.subarray(150_000), headers: { 'content-range': '150000-199999' } });
    expect(wrong.status).toBe(416);
    expect((await wrong.json()).errors[0].code).toBe('RANGE_INVALID');
    const p2 = await fetch(`${srv.url}${loc}`, { method: 'PATCH', body: body.subarray(100_000, 150_000), headers: { 'content-range': '100000-149999' } });
    expect(p2.headers.get('range')).toBe('0-149999');
    const st = await fetch(`${srv.url}${loc}`);
    expect(st.status).toBe(204);
    expect(st.headers.get('range')).toBe('0-149999');
    const fin = await fetch(`${srv.url}${loc}?digest=${sha(body)}`, { method: 'PUT', body: body.subarray(150_000) });
    expect(fin.status).toBe(201);
    expect(fin.headers.get('docker-content-digest')).toBe(sha(body));
    const got = await v2(`reg/chunky/blobs/${sha(body)}`);
    expect(Buffer.from(await got.arrayBuffer()).equals(body)).toBe(true);
    expect(got.headers.get('docker-content-digest')).toBe(sha(body));
    const after = await fetch(`${srv.url}${loc}`);
    expect(after.status).toBe(404);
    expect((await after.json()).errors[0].code).toBe('BLOB_UPLOAD_UNKNOWN');
  });

  it('POST then PUT with the whole body; cancel with DELETE', async () => {
    const body = randomBytes(1000);
    const start = await v2('reg/pp/blobs/uploads/', { method: 'POST' });
    const loc = start.headers.get('location')!;
    const fin = await fetch(`${srv.url}${loc}?digest=${sha(body)}`, { method: 'PUT', body });
    expect(fin.status).toBe(201);
    const s2 = await v2('reg/pp/blobs/uploads/', { method: 'POST' });
    const l2 = s2.headers.get('location')!;
    expect((await fetch(`${srv.url}${l2}`, { method: 'DELETE' })).status).toBe(204);
    expect((await fetch(`${srv.url}${l2}`)).status).toBe(404);
    expect(await uploadPartsLeft(srv)).toEqual([]);
  });

  it('refuses a wrong digest with DIGEST_INVALID and keeps nothing', async () => {
    const body = randomBytes(3000);
    const wrongD = sha('other');
    const mono = await v2(`reg/bad/blobs/uploads/?digest=${wrongD}`, { method: 'POST', body });
    expect(mono.status).toBe(400);
    expect((await mono.json()).errors[0].code).toBe('DIGEST_INVALID');
    const start = await v2('reg/bad/blobs/uploads/', { method: 'POST' });
    const loc = start.headers.get('location')!;
    const fin = await fetch(`${srv.url}${loc}?digest=${wrongD}`, { method: 'PUT', body });
    expect(fin.status).toBe(400);
    expect((await fin.json()).errors[0].code).toBe('DIGEST_INVALID');
    expect(await srv.svc.blob.stat(sha(body) as `sha256:${string}`)).toBeNull();
    expect((await v2(`reg/bad/blobs/${sha(body)}`)).status).toBe(404);
    expect(await uploadPartsLeft(srv)).toEqual([]);
  });

  it('mounts a blob across repos without copying', async () => {
    const d = await pushBlob('reg/src', randomBytes(4000));
    const res = await v2(`reg2/dst/blobs/uploads/?mount=${d}&from=reg/src`, { method: 'POST' });
    expect(res.status).toBe(201);
    expect(res.headers.get('docker-content-digest')).toBe(d);
    expect((await v2(`reg2/dst/blobs/${d}`, { method: 'HEAD' })).status).toBe(200);
    // unknown source: falls back to a new upload session
    const miss = await v2(`reg2/dst/blobs/uploads/?mount=${sha('nope')}&from=reg/src`, { method: 'POST' });
    expect(miss.status).toBe(202);
  });

  it('serves blob ranges', async () => {
    const body = randomBytes(10_000);
    const d = await pushBlob('reg/ranged', body);
    const res = await v2(`reg/ranged/blobs/${d}`, { headers: { range: 'bytes=100-199' } });
    expect(res.status).toBe(206);
    expect(Buffer.from(await res.arrayBuffer()).equals(body.subarray(100, 200))).toBe(true);
  });

  it('validates manifests: JSON, media type, referenced blobs, size cap', async () => {
    const put = (body: string | Buffer, ct = 'application/vnd.oci.image.manifest.v1+json') =>
      v2('reg/val/manifests/t', { method: 'PUT', body: typeof body === 'string' ? body : new Uint8Array(body), headers: { 'content-type': ct } });
    let r = await put('{not json');
    expect(r.status).toBe(400);
    expect((await r.json()).errors[0].code).toBe('MANIFEST_INVALID');
    r = await put(JSON.stringify({ schemaVersion: 2, mediaType: 'application/x-nope', config: {}, layers: [] }), 'application/x-nope');
    expect((await r.json()).errors[0].code).toBe('MANIFEST_INVALID');
    r = await put(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha('cfg'), size: 3 }, layers: [],
    }));
    expect(r.status).toBe(400);
    expect((await r.json()).errors[0].code).toBe('MANIFEST_BLOB_UNKNOWN');
    r = await put(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ digest: sha('m'), size: 1, mediaType: 'application/vnd.oci.image.manifest.v1+json' }] }), 'application/vnd.oci.image.index.v1+json');
    expect((await r.json()).errors[0].code).toBe('MANIFEST_BLOB_UNKNOWN');
    r = await put(Buffer.alloc(70 * 1024, 0x20));
    expect(r.status).toBe(413);
    // without Content-Length (chunked), the cap applies while reading
    const big = new ReadableStream({ start(c) { for (let i = 0; i < 70; i++) c.enqueue(new Uint8Array(1024).fill(0x20)); c.close(); } });
    r = await v2('reg/val/manifests/t', { method: 'PUT', body: big, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, duplex: 'half' } as RequestInit);
    expect(r.status).toBe(413);
    expect((await r.json()).errors[0].code).toBe('SIZE_INVALID');
  });

  it('tags are mutable pointers, digests immutable; negotiation; delete by tag and digest', async () => {
    const a = await pushImage('reg/tagged', 'latest');
    const b = await pushImage('reg/tagged', 'latest');
    let res = await v2('reg/tagged/manifests/latest', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    expect(res.headers.get('docker-content-digest')).toBe(b.md);
    expect(res.headers.get('content-type')).toBe('application/vnd.oci.image.manifest.v1+json');
    // an Accept we cannot satisfy still gets the stored type
    res = await v2(`reg/tagged/manifests/${a.md}`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(a.manifest)).toBe(true);
    const head = await v2('reg/tagged/manifests/latest', { method: 'HEAD' });
    expect(head.headers.get('docker-content-digest')).toBe(b.md);
    expect(head.headers.get('content-length')).toBe(String(b.manifest.length));
    // digest mismatch on PUT by digest
    const bad = await v2(`reg/tagged/manifests/${a.md}`, { method: 'PUT', body: b.manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
    expect((await bad.json()).errors[0].code).toBe('DIGEST_INVALID');
    expect((await v2('reg/tagged/manifests/latest', { method: 'DELETE' })).status).toBe(202);
    expect((await v2('reg/tagged/manifests/latest')).status).toBe(404);
    expect((await v2(`reg/tagged/manifests/${b.md}`)).status).toBe(200);
    await pushImage('reg/tagged', 'again');
    expect((await v2(`reg/tagged/manifests/${b.md}`, { method: 'DELETE' })).status).toBe(202);
    expect((await v2(`reg/tagged/manifests/${b.md}`)).status).toBe(404);
  });

  it('gives the linux/amd64 manifest of an index to a client that accepts no index type', async () => {
    const amd = await pushImage('reg/plat', 'amd');
    const arm = await pushImage('reg/plat', 'arm');
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: arm.md, size: arm.manifest.length, platform: { os: 'linux', architecture: 'arm64' } },
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: amd.md, size: amd.manifest.length, platform: { os: 'linux', architecture: 'amd64' } },
      ],
    }));
    expect((await v2('reg/plat/manifests/multi', { method: 'PUT', body: index, headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' } })).status).toBe(201);
    const old = await v2('reg/plat/manifests/multi', { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' } });
    expect(old.headers.get('docker-content-digest')).toBe(amd.md);
    const modern = await v2('reg/plat/manifests/multi', { headers: { accept: 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json' } });
    expect(modern.headers.get('docker-content-digest')).toBe(sha(index));
    const none = await v2('reg/plat/manifests/multi');
    expect(none.headers.get('docker-content-digest')).toBe(sha(index));
  });

  it('paginates tags/list and _catalog with n/last and Link', async () => {
    for (const t of ['a', 'b', 'c', 'd', 'e']) await pushImage('reg/paged/x', t);
    let res = await v2('reg/paged/x/tags/list?n=2');
    expect((await res.json()).tags).toEqual(['a', 'b']);
    expect(res.headers.get('link')).toBe('</v2/reg/paged/x/tags/list?n=2&last=b>; rel="next"');
    res = await v2('reg/paged/x/tags/list?n=2&last=b');
    expect((await res.json()).tags).toEqual(['c', 'd']);
    res = await v2('reg/paged/x/tags/list?n=99999999999');
    expect((await res.json()).tags).toEqual(['a', 'b', 'c', 'd', 'e']);
    res = await v2('_catalog?n=1');
    const first = (await res.json()).repositories;
    expect(first).toHaveLength(1);
    expect(res.headers.get('link')).toContain('rel="next"');
    res = await v2('_catalog');
    expect((await res.json()).repositories).toContain('reg/paged/x');
  });

  it('referrers API lists manifests whose subject is the digest', async () => {
    const img = await pushImage('reg/signed', 'v1');
    const sig = await pushImage('reg/signed', 'sig', {
      artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: img.md, size: img.manifest.length },
    });
    const res = await v2(`reg/signed/referrers/${img.md}`);
    expect(res.headers.get('content-type')).toBe('application/vnd.oci.image.index.v1+json');
    const idx = await res.json();
    expect(idx.manifests).toEqual([expect.objectContaining({ digest: sig.md, artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json' })]);
    const filtered = await v2(`reg/signed/referrers/${img.md}?artifactType=application/x-other`);
    expect(filtered.headers.get('oci-filters-applied')).toBe('artifactType');
    expect((await filtered.json()).manifests).toEqual([]);
  });
});
