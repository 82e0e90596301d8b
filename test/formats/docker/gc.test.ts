import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker } from '../../../src/formats/docker/index.js';
import type { GcContext } from '../../../src/formats/types.js';
import { formatGc } from '../../../src/maintenance/gc.js';
import { startServer, type TestServer } from '../../helpers/server.js';
import { closeServer, uploadPartsLeft } from './util.js';

// These tests call the format's gc hook alone (src/maintenance/gc.ts formatGc), without the blob sweep.
let srv: TestServer;
const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const v2 = (p: string, init?: RequestInit) => fetch(`${srv.url}/v2/${p}`, init);

beforeAll(async () => {
  srv = await startServer();
  await srv.addRepo({ name: 'g', format: 'docker', kind: 'local' });
});
afterAll(() => closeServer(srv));

async function blob(body: Buffer): Promise<string> {
  const res = await v2(`g/app/blobs/uploads/?digest=${sha(body)}`, { method: 'POST', body: new Uint8Array(body) });
  expect(res.status).toBe(201);
  return sha(body);
}

async function manifest(ref: string, doc: Record<string, unknown>): Promise<string> {
  const body = JSON.stringify(doc);
  if (ref === 'by-digest') ref = sha(body);
  const res = await v2(`g/app/manifests/${ref}`, { method: 'PUT', body, headers: { 'content-type': doc.mediaType as string } });
  expect(res.status).toBe(201);
  return sha(body);
}

async function image(ref: string, extra: Record<string, unknown> = {}) {
  const layer = await blob(randomBytes(3000));
  const config = await blob(Buffer.from(JSON.stringify({ os: 'linux', r: randomBytes(4).toString('hex') })));
  const d = await manifest(ref, {
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 1 },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer, size: 3000 }], ...extra,
  });
  return { d, layer, config };
}

function run(now: number, dryRun = false) {
  const lines: Parameters<GcContext['report']>[0][] = [];
  return formatGc({ svc: srv.svc, dryRun, now, report: (l) => lines.push(l) }, docker).then(() => lines);
}

describe('docker gc hook', () => {
  it('keeps tagged graphs and referrers, reclaims old untagged manifests, stray layers and expired uploads', async () => {
    const kept = await image('v1');
    const old = await image('v2');
    const child = await image('by-digest'); // untagged itself; the index below names it
    const idx = await manifest('multi', {
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: child.d, size: 1 }],
    });
    const sig = await image('tmp', {
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: kept.d, size: 1 },
    });
    expect((await v2('g/app/manifests/tmp', { method: 'DELETE' })).status).toBe(202); // the signature is now untagged
    await image('v2'); // v2 moves: the old v2 manifest is untagged
    const stray = await blob(randomBytes(100)); // uploaded, never referenced
    const session = await v2('g/app/blobs/uploads/', { method: 'POST' });
    expect(session.status).toBe(202);

    // Young: a push may still be in progress; nothing is touched.
    expect(await run(Date.now())).toEqual([]);

    const later = Date.now() + 3 * 24 * 3600_000;
    const dry = await run(later, true);
    expect((await v2(`g/app/manifests/${old.d}`)).status).toBe(200); // dry run removes nothing

    const lines = await run(later);
    expect(dry).toEqual(lines); // the dry run reported exactly what the real one did
    const actions = lines.map((l) => `${l.action} ${l.digest ?? ''}`);
    expect(actions).toContain(`untagged-manifest ${old.d}`);
    expect(actions).toContain(`unreferenced-layer ${old.layer}`);
    expect(actions).toContain(`unreferenced-layer ${stray}`);
    expect(lines.some((l) => l.action === 'expired-upload')).toBe(true);
    for (const gone of [old.d]) expect((await v2(`g/app/manifests/${gone}`)).status).toBe(404);
    for (const stays of [kept.d, idx, child.d, sig.d]) expect((await v2(`g/app/manifests/${stays}`)).status).toBe(200);
    for (const b of [kept.layer, kept.config, child.layer, sig.config]) expect((await v2(`g/app/blobs/${b}`, { method: 'HEAD' })).status).toBe(200);
    expect((await v2(`g/app/blobs/${old.layer}`, { method: 'HEAD' })).status).toBe(404);
    expect(await uploadPartsLeft(srv)).toEqual([]);

    // What the core sweep will reap: blobs no row points at any more.
    const unref = await srv.svc.meta.blobs.unreferenced(later);
    expect(unref).toEqual(expect.arrayContaining([old.layer, old.config, old.d, stray]));
    expect(unref).not.toContain(kept.layer);
    expect(unref).not.toContain(child.layer);
  });
});
