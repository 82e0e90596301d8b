import { createHash, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeServer } from './util.js';
import { startServer, type TestServer } from '../../helpers/server.js';

let srv: TestServer;
const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const OCI = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER = 'application/vnd.docker.distribution.manifest.v2+json';

beforeAll(async () => {
  srv = await startServer({ 'limits.metadata_body': '64KiB' });
  await srv.addRepo({ name: 'reg', format: 'docker', kind: 'local' });
});
afterAll(() => closeServer(srv));

const v2 = (p: string, init?: RequestInit) => fetch(`${srv.url}/v2/${p}`, init);

async function pushBlob(name: string, body: Buffer): Promise<string> {
  const d = sha(body);
  const res = await v2(`${name}/blobs/uploads/?digest=${d}`, { method: 'POST', body: new Uint8Array(body) });
  expect(res.status).toBe(201);
  return d;
}

/** A config and a layer in `name`, and the descriptors a manifest names them by. */
async function parts(name: string) {
  const layer = randomBytes(2000);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux' }));
  const cd = await pushBlob(name, config);
  const ld = await pushBlob(name, layer);
  return {
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cd, size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: ld, size: layer.length }],
  };
}

function putManifest(name: string, ref: string, doc: unknown, ct: string) {
  return v2(`${name}/manifests/${ref}`, { method: 'PUT', body: JSON.stringify(doc), headers: { 'content-type': ct } });
}

async function expectError(res: Response, status: number, code: string) {
  expect(res.status).toBe(status);
  const body = await res.json();
  expect(body).toEqual({ errors: [{ code, message: expect.any(String), detail: null }] });
}

describe('docker: bad input gets the registry error', () => {
  it('refuses ambiguous manifests (CVE-2021-41190) with MANIFEST_INVALID and stores nothing', async () => {
    const p = await parts('reg/amb');
    const image = { schemaVersion: 2, mediaType: OCI, ...p };
    const imgRes = await putManifest('reg/amb', 'ok', image, OCI);
    expect(imgRes.status).toBe(201);
    const child = { mediaType: OCI, digest: imgRes.headers.get('docker-content-digest'), size: JSON.stringify(image).length };
    const cases: [string, unknown, string][] = [
      ['image manifest that also lists manifests', { ...image, manifests: [child] }, OCI],
      ['index that also has layers and config', { schemaVersion: 2, mediaType: INDEX, manifests: [child], ...p }, INDEX],
      ['no mediaType, both manifests and layers', { schemaVersion: 2, manifests: [child], ...p }, OCI],
      ['no mediaType, both manifests and layers, sent as an index', { schemaVersion: 2, manifests: [child], ...p }, INDEX],
      ['mediaType says index, the document is an image', { schemaVersion: 2, mediaType: INDEX, ...p }, INDEX],
      ['Content-Type says index, the document is an image', { schemaVersion: 2, ...p }, INDEX],
      ['Content-Type says docker v2, mediaType says OCI', image, DOCKER],
      ['Content-Type says image, the document is an index', { schemaVersion: 2, manifests: [child] }, OCI],
    ];
    for (const [what, doc, ct] of cases) {
      const res = await putManifest('reg/amb', 'bad', doc, ct);
      expect(res.status, what).toBe(400);
      expect((await res.json()).errors[0].code, what).toBe('MANIFEST_INVALID');
    }
    await expectError(await v2('reg/amb/manifests/bad'), 404, 'MANIFEST_UNKNOWN');
    const tags = await (await v2('reg/amb/tags/list')).json();
    expect(tags.tags).toEqual(['ok']);
  });

  /**
   * A manifest PUT over a raw socket that keeps sending `count` 64 KiB chunks
   * whatever the server says, reading the answer at the same time: what it read,
   * and how many chunks went out before the server hung up.
   */
  function bigPut(count: number, declared: boolean) {
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const frame = declared ? chunk : Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
    return new Promise<{ status?: number; body: string; sent: number }>((resolve) => {
      const sock = connect(srv.port, '127.0.0.1');
      let sent = 0;
      let answer = '';
      const done = () => {
        const [head = '', body = ''] = answer.split('\r\n\r\n');
        const status = Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1]) || undefined;
        resolve({ status, body: /transfer-encoding: chunked/i.test(head) ? body.split('\r\n')[1] : body, sent });
      };
      sock.setEncoding('latin1');
      sock.on('data', (c: string) => {
        answer += c;
        // keep-alive: the server keeps the connection once it read everything, so stop once both are done
        if (sent === count && sock.writableFinished && /\r\n\r\n.*\}/s.test(answer)) sock.destroy();
      });
      sock.on('error', () => sock.destroy());
      sock.on('close', done);
      sock.write(`PUT /v2/reg/big/manifests/t HTTP/1.1\r\nhost: x\r\ncontent-type: ${OCI}\r\n`
        + (declared ? `content-length: ${chunk.length * count}` : 'transfer-encoding: chunked') + '\r\n\r\n');
      const write = () => {
        while (sent < count && !sock.destroyed) {
          sent++;
          if (!sock.write(frame)) return void sock.once('drain', write);
        }
        const ended = () => {
          if (/\r\n\r\n.*\}/s.test(answer)) sock.destroy();
        };
        if (!sock.destroyed) {
          if (declared) sock.end(ended);
          else sock.end('0\r\n\r\n', ended);
        }
      };
      write();
    });
  }

  it('answers an oversized manifest with 413 and the docker body, read by a client still sending', async () => {
    for (const declared of [true, false]) {
      const got = await bigPut(64, declared); // 4 MiB against a 64 KiB cap
      expect(got.status, `declared length: ${declared}`).toBe(413);
      expect(JSON.parse(got.body)).toEqual({ errors: [{ code: 'SIZE_INVALID', message: expect.stringContaining(String(64 * 1024)), detail: null }] });
    }
    expect((await v2('')).status).toBe(200);
  });

  it('stops reading an oversized body past a bound, after the client has the 413', async () => {
    for (const declared of [true, false]) {
      const got = await bigPut(4096, declared); // 256 MiB offered; the server drops at most 8 MiB of it
      expect(got.status, `declared length: ${declared}`).toBe(413);
      expect(JSON.parse(got.body).errors[0].code).toBe('SIZE_INVALID');
      expect(got.sent, `declared length: ${declared}`).toBeLessThan(4096);
    }
    expect((await v2('')).status).toBe(200);
  }, 60_000);

  it('gives Location and Range with the 416 for an out-of-order chunk', async () => {
    const start = await v2('reg/chunks/blobs/uploads/', { method: 'POST' });
    const loc = start.headers.get('location')!;
    const p1 = await fetch(`${srv.url}${loc}`, { method: 'PATCH', body: randomBytes(1000), headers: { 'content-range': '0-999' } });
    expect(p1.status).toBe(202);
    const wrong = await fetch(`${srv.url}${loc}`, { method: 'PATCH', body: randomBytes(500), headers: { 'content-range': '2000-2499' } });
    await expectError(wrong, 416, 'RANGE_INVALID');
    expect(wrong.headers.get('location')).toBe(loc);
    expect(wrong.headers.get('range')).toBe('0-999');
    expect(wrong.headers.get('docker-upload-uuid')).toBeTruthy();
    const status = await fetch(`${srv.url}${loc}`);
    expect(status.headers.get('range')).toBe('0-999');
  });

  it('answers a URL that does not percent-decode with the docker error body', async () => {
    for (const p of ['reg/x/manifests/%zz', 'reg/%E0%A4%A/tags/list', 'reg/x/blobs/%', '%C3%28/x/tags/list']) {
      const res = await v2(p);
      await expectError(res, 400, 'NAME_INVALID');
    }
  });

  it('GET/HEAD of a reference that is not a valid tag is 404 MANIFEST_UNKNOWN; PUT to it is TAG_INVALID', async () => {
    const p = await parts('reg/refs');
    expect((await putManifest('reg/refs', 'v1', { schemaVersion: 2, mediaType: OCI, ...p }, OCI)).status).toBe(201);
    for (const ref of ['-bad', 'a'.repeat(129), 'sha256:nothex', 'x:y']) {
      await expectError(await v2(`reg/refs/manifests/${encodeURIComponent(ref)}`), 404, 'MANIFEST_UNKNOWN');
      const head = await v2(`reg/refs/manifests/${encodeURIComponent(ref)}`, { method: 'HEAD' });
      expect(head.status).toBe(404);
    }
    await expectError(await putManifest('reg/refs', '-bad', { schemaVersion: 2, mediaType: OCI, ...p }, OCI), 400, 'TAG_INVALID');
  });

  it('tags/list of an image whose last manifest was deleted is 200 with no tags; of an unknown image NAME_UNKNOWN', async () => {
    const p = await parts('reg/gone');
    const put = await putManifest('reg/gone', 'v1', { schemaVersion: 2, mediaType: OCI, ...p }, OCI);
    expect(put.status).toBe(201);
    expect((await v2(`reg/gone/manifests/${put.headers.get('docker-content-digest')}`, { method: 'DELETE' })).status).toBe(202);
    const res = await v2('reg/gone/tags/list');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ name: 'reg/gone', tags: [] });
    await expectError(await v2('reg/never/tags/list'), 404, 'NAME_UNKNOWN');
  });
});
