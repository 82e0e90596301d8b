import { afterAll, beforeAll, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { chartTgz, sha256hex } from './charts.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer();
  await srv.addRepo({ name: 'oci', format: 'docker', kind: 'local' });
});
afterAll(async () => srv?.close());

/** What `helm push chart.tgz oci://HOST/oci` sends (oras): HEAD, then POST + PUT per blob, then the manifest. */
async function pushBlob(image: string, body: Buffer): Promise<string> {
  const digest = `sha256:${sha256hex(body)}`;
  expect((await fetch(`${srv.url}/v2/oci/${image}/blobs/${digest}`, { method: 'HEAD' })).status).toBe(404);
  const post = await fetch(`${srv.url}/v2/oci/${image}/blobs/uploads/`, { method: 'POST' });
  expect(post.status).toBe(202);
  const location = new URL(post.headers.get('location')!, srv.url);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(body) });
  expect(put.status).toBe(201);
  return digest;
}

it('helm push / pull of an OCI chart through a docker repo', async () => {
  const tgz = await chartTgz({ apiVersion: 'v2', name: 'mychart', version: '1.0.0' });
  const config = Buffer.from(JSON.stringify({ apiVersion: 'v2', name: 'mychart', version: '1.0.0' }));
  const configDigest = await pushBlob('mychart', config);
  const layerDigest = await pushBlob('mychart', tgz);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.cncf.helm.config.v1+json', digest: configDigest, size: config.length },
    layers: [{ mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip', digest: layerDigest, size: tgz.length }],
    annotations: { 'org.opencontainers.image.title': 'mychart', 'org.opencontainers.image.version': '1.0.0' },
  }));
  const put = await fetch(`${srv.url}/v2/oci/mychart/manifests/1.0.0`, {
    method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: new Uint8Array(manifest),
  });
  expect(put.status).toBe(201);

  // helm pull: resolve the tag, fetch the manifest, then the chart layer.
  const got = await fetch(`${srv.url}/v2/oci/mychart/manifests/1.0.0`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  expect(got.status).toBe(200);
  expect(got.headers.get('docker-content-digest')).toBe(`sha256:${sha256hex(manifest)}`);
  const layers = (await got.json()).layers;
  const blob = await fetch(`${srv.url}/v2/oci/mychart/blobs/${layers[0].digest}`);
  expect(Buffer.from(await blob.arrayBuffer()).equals(tgz)).toBe(true);
  expect((await (await fetch(`${srv.url}/v2/oci/mychart/tags/list`)).json()).tags).toEqual(['1.0.0']);
});
