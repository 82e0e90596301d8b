import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { Layout, type Blob } from './oci-layout.js';
import { startRegistry, type Registry } from './registry.js';
import { closeServer, skopeo, TLS, which } from './util.js';

describe.skipIf(!which('docker-registry') || !which('skopeo'))('docker virtual repo and default-repo mirror', () => {
  let regA: Registry;
  let regB: Registry;
  let srv: TestServer;
  let tmp: string;
  let a: Blob;
  let b: Blob;
  let mine: Blob;
  let layout: Layout;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'docker-virtual-'));
    [regA, regB] = await Promise.all([startRegistry(), startRegistry()]);
    layout = new Layout(join(tmp, 'img'));
    a = await layout.image({ seed: 'a' });
    b = await layout.image({ seed: 'b' });
    mine = await layout.image({ seed: 'mine' });
    await layout.write({ a, b, mine });
    await skopeo('copy', ...TLS, `oci:${layout.dir}:a`, `docker://${regA.host}/tools/x:1`);
    await skopeo('copy', ...TLS, `oci:${layout.dir}:b`, `docker://${regB.host}/tools/x:1`);
    srv = await startServer({ 'docker.default_repo': 'dvirt' });
    await srv.addRepo({ name: 'dloc', format: 'docker', kind: 'local' });
    await srv.addRepo({ name: 'rema', format: 'docker', kind: 'remote', upstream: regA.url });
    await srv.addRepo({ name: 'remb', format: 'docker', kind: 'remote', upstream: regB.url });
    await srv.addRepo({ name: 'dvirt', format: 'docker', kind: 'virtual', members: ['dloc', 'rema', 'remb'], default_local: 'dloc' });
    await srv.addRepo({ name: 'dro', format: 'docker', kind: 'virtual', members: ['rema'] });
  });
  afterAll(async () => {
    if (srv) await closeServer(srv);
    await regA?.close();
    await regB?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('pushes through the virtual repo into default_local and pulls back through it', async () => {
    await skopeo('copy', ...TLS, '--preserve-digests', `oci:${layout.dir}:mine`, `docker://${srv.host}/dvirt/tools/x:local`);
    const direct = await fetch(`${srv.url}/v2/dloc/tools/x/manifests/local`);
    expect(direct.headers.get('docker-content-digest')).toBe(mine.digest);
    const via = await fetch(`${srv.url}/v2/dvirt/tools/x/manifests/local`);
    expect(via.headers.get('docker-content-digest')).toBe(mine.digest);
    expect(via.headers.get('x-artifact-repo')).toBe('dloc');
    await skopeo('copy', ...TLS, `docker://${srv.host}/dvirt/tools/x:local`, `oci:${join(tmp, 'o1')}:x`);
  });

  it('a push through the virtual repo may reuse base layers another member has', async () => {
    const base = JSON.parse(layout.blobs.get(a.digest)!.toString());
    const extra = await layout.image({ layers: 1, seed: 'extra' });
    const top = JSON.parse(layout.blobs.get(extra.digest)!.toString());
    const derived = await layout.add(Buffer.from(JSON.stringify({ ...top, layers: [...base.layers, ...top.layers] })), top.mediaType);
    await layout.write({ a, b, mine, derived });
    await skopeo('copy', ...TLS, '--preserve-digests', `oci:${layout.dir}:derived`, `docker://${srv.host}/dvirt/tools/x:derived`);
    const res = await fetch(`${srv.url}/v2/dloc/tools/x/manifests/derived`);
    expect(res.headers.get('docker-content-digest')).toBe(derived.digest);
    await res.arrayBuffer();
    await skopeo('copy', ...TLS, `docker://${srv.host}/dloc/tools/x:derived`, `oci:${join(tmp, 'o4')}:x`);
  });

  it('resolves through members in order and unions tags', async () => {
    const m = await fetch(`${srv.url}/v2/dvirt/tools/x/manifests/1`);
    expect(m.headers.get('docker-content-digest')).toBe(a.digest);
    expect(m.headers.get('x-artifact-repo')).toBe('rema');
    await skopeo('copy', ...TLS, `docker://${srv.host}/dvirt/tools/x:1`, `oci:${join(tmp, 'o2')}:x`);
    const tags = await (await fetch(`${srv.url}/v2/dvirt/tools/x/tags/list`)).json();
    expect(tags.tags).toEqual(['1', 'derived', 'local']);
  });

  it('mounts from a name served by the virtual repo', async () => {
    const layer = JSON.parse(layout.blobs.get(mine.digest)!.toString()).layers[0].digest;
    const res = await fetch(`${srv.url}/v2/dloc/copy/blobs/uploads/?mount=${layer}&from=dvirt/tools/x`, { method: 'POST' });
    expect(res.status).toBe(201);
    expect((await fetch(`${srv.url}/v2/dloc/copy/blobs/${layer}`, { method: 'HEAD' })).status).toBe(200);
  });

  it('mounts from a name served by a virtual repo nested in another; a blob no leaf holds opens an upload instead', async () => {
    await srv.addRepo({ name: 'douter', format: 'docker', kind: 'virtual', members: ['dro', 'dvirt'] });
    const layer = JSON.parse(layout.blobs.get(mine.digest)!.toString()).layers[0].digest;
    const res = await fetch(`${srv.url}/v2/dloc/nested/blobs/uploads/?mount=${layer}&from=douter/tools/x`, { method: 'POST' });
    expect(res.status).toBe(201);
    expect(res.headers.get('docker-content-digest')).toBe(layer);
    const head = await fetch(`${srv.url}/v2/dloc/nested/blobs/${layer}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('x-artifact-repo')).toBe('dloc');
    const missing = `sha256:${'0'.repeat(64)}`;
    const miss = await fetch(`${srv.url}/v2/dloc/nested/blobs/uploads/?mount=${missing}&from=douter/tools/x`, { method: 'POST' });
    expect(miss.status).toBe(202);
    expect((await fetch(`${srv.url}/v2/dloc/nested/blobs/${missing}`, { method: 'HEAD' })).status).toBe(404);
  });

  it('refuses pushes to a virtual repo without default_local', async () => {
    const res = await fetch(`${srv.url}/v2/dro/tools/y/blobs/uploads/`, { method: 'POST' });
    expect(res.status).toBe(405);
    expect((await res.json()).errors[0].code).toBe('UNSUPPORTED');
  });

  it('serves unprefixed names through docker.default_repo, honouring containerd ns=', async () => {
    await skopeo('copy', ...TLS, `docker://${srv.host}/tools/x:1`, `oci:${join(tmp, 'o3')}:x`);
    const plain = await fetch(`${srv.url}/v2/tools/x/manifests/1`);
    expect(plain.headers.get('docker-content-digest')).toBe(a.digest);
    await plain.arrayBuffer();
    const nsB = await fetch(`${srv.url}/v2/tools/x/manifests/1?ns=${regB.host}`);
    expect(nsB.headers.get('docker-content-digest')).toBe(b.digest);
    expect(nsB.headers.get('x-artifact-repo')).toBe('remb');
    const blob = JSON.parse(Buffer.from(await nsB.arrayBuffer()).toString()).layers[0].digest;
    const bl = await fetch(`${srv.url}/v2/tools/x/blobs/${blob}?ns=${regB.host}`);
    expect(bl.status).toBe(200);
    expect((await bl.arrayBuffer()).byteLength).toBeGreaterThan(0);
  });
});
