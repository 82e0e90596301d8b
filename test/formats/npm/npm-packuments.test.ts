import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { docWork } from '../../../src/formats/npm/index-doc.js';
import { startServer, type TestServer } from '../../helpers/server.js';
import { FakeRegistry, type PackedVersion } from './fake-registry.js';

const ABBREV = 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*';

/** Versions of a package with made-up tarball bytes (the registry only needs their hashes). */
function versions(name: string, n: number, filler = 0): PackedVersion[] {
  return Array.from({ length: n }, (_, i) => ({
    name, version: `1.${i}.0`, file: `${name.replace(/^@.*\//, '')}-1.${i}.0.tgz`, data: Buffer.from(`${name}@1.${i}.0 ${'x'.repeat(filler)}`),
    dependencies: filler ? { [`dep-${i}`]: `^${'9'.repeat(filler)}.0.0` } : undefined,
  }));
}

let srv: TestServer | undefined;
const regs: FakeRegistry[] = [];
afterEach(async () => {
  await srv?.close();
  for (const r of regs.splice(0)) await r.close();
  srv = undefined;
});

async function setup(pkgs: PackedVersion[], flags: Record<string, unknown> = {}, logLines?: string[]) {
  const reg = await FakeRegistry.start(pkgs);
  regs.push(reg);
  srv = await startServer(flags, { logLines });
  await srv.addRepo({ name: 'npmjs', format: 'npm', kind: 'remote', upstream: reg.url });
  return reg;
}

const packumentHits = (reg: FakeRegistry, escaped: string) => reg.up.count(`/${escaped}`);

describe('npm remote packuments', () => {
  it('abbreviated + full packument and a tarball of one package: one upstream packument fetch', async () => {
    const pkgs = versions('@sc/twice', 3);
    const reg = await setup(pkgs);
    const ab = await fetch(`${srv!.url}/npmjs/@sc%2ftwice`, { headers: { accept: ABBREV } });
    expect(ab.headers.get('content-type')).toMatch(/^application\/vnd\.npm\.install-v1\+json/);
    const aj = await ab.json();
    expect(aj.versions['1.2.0'].description).toBeUndefined();
    expect(aj.modified).toBe('2026-01-01T00:00:00.000Z');
    const full = await (await fetch(`${srv!.url}/npmjs/@sc%2ftwice`, { headers: { accept: 'application/json' } })).json();
    expect(full.description).toBe('the @sc/twice package');
    expect(full.versions['1.2.0'].readme).toBe('long readme');
    const t = await fetch(`${srv!.url}/npmjs/@sc/twice/-/twice-1.1.0.tgz`);
    expect(Buffer.from(await t.arrayBuffer()).equals(pkgs[1].data)).toBe(true);
    expect(packumentHits(reg, '@sc%2Ftwice')).toBe(1);
  });

  it('gzip when the client accepts it: same document, its own ETag, Vary: Accept-Encoding; identity otherwise', async () => {
    await setup(versions('zipped', 40));
    const plain = await fetch(`${srv!.url}/npmjs/zipped`, { headers: { 'accept-encoding': 'identity' } });
    const plainBody = Buffer.from(await plain.arrayBuffer());
    expect(plain.headers.get('content-encoding')).toBeNull();
    // fetch() would decompress silently: read the raw bytes with node:http
    const { request } = await import('node:http');
    const raw = await new Promise<{ headers: Record<string, any>; body: Buffer; status: number }>((resolve, reject) => {
      request(`${srv!.url}/npmjs/zipped`, { headers: { 'accept-encoding': 'gzip, deflate, br' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c)).on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks), status: res.statusCode! }));
      }).on('error', reject).end();
    });
    expect(raw.status).toBe(200);
    expect(raw.headers['content-encoding']).toBe('gzip');
    expect(raw.headers.vary).toMatch(/accept-encoding/i);
    expect(Number(raw.headers['content-length'])).toBe(raw.body.length);
    expect(raw.body.length).toBeLessThan(plainBody.length);
    expect(gunzipSync(raw.body).equals(plainBody)).toBe(true);
    expect(raw.headers.etag).not.toBe(plain.headers.get('etag'));
    const again = await fetch(`${srv!.url}/npmjs/zipped`, { headers: { 'accept-encoding': 'gzip', 'if-none-match': raw.headers.etag } });
    expect(again.status).toBe(304);
  });

  it('a big packument (~10 MB) is parsed and rendered once, not on every request', async () => {
    await setup(versions('huge', 2500, 3500));
    const first = await fetch(`${srv!.url}/npmjs/huge`);
    const body = Buffer.from(await first.arrayBuffer());
    expect(body.length).toBeGreaterThan(9_000_000);
    const { parses, renders } = docWork;
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${srv!.url}/npmjs/huge`);
      expect(r.headers.get('x-artifact-source')).toBe('cache');
      expect(createHash('sha256').update(Buffer.from(await r.arrayBuffer())).digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
    }
    // the abbreviated form is rendered once too, from the same parsed document
    for (let i = 0; i < 2; i++) await (await fetch(`${srv!.url}/npmjs/huge`, { headers: { accept: ABBREV } })).arrayBuffer();
    expect(docWork.parses - parses).toBe(0);
    expect(docWork.renders - renders).toBe(1);
  });

  it('logs every upstream request (repo, url without credentials, status, bytes, ms) and single-flight joins', async () => {
    const lines: string[] = [];
    const pkgs = versions('logged', 2);
    const reg = await FakeRegistry.start(pkgs);
    regs.push(reg);
    srv = await startServer({ 'server.log_level': 'info' }, { logLines: lines });
    await srv.addRepo({ name: 'npmjs', format: 'npm', kind: 'remote', upstream: reg.url.replace('http://', 'http://bob:hunter2@') });
    await Promise.all(Array.from({ length: 4 }, () => fetch(`${srv!.url}/npmjs/logged`).then((r) => r.arrayBuffer())));
    await (await fetch(`${srv!.url}/npmjs/nope`)).arrayBuffer();
    await (await fetch(`${srv!.url}/npmjs/-/v1/search?text=x&X-Amz-Signature=s3cr3tsig`)).arrayBuffer();
    const logs = lines.join('').trim().split('\n').map((l) => JSON.parse(l));
    const upstream = logs.filter((l) => l.msg === 'upstream request');
    expect(upstream).toEqual(expect.arrayContaining([
      expect.objectContaining({ repo: 'npmjs', upstream: `${reg.url}/logged`, status: 200, bytes: expect.any(Number), ms: expect.any(Number) }),
      expect.objectContaining({ repo: 'npmjs', upstream: `${reg.url}/nope`, status: 404 }),
    ]));
    expect(upstream.filter((l) => l.upstream.endsWith('/logged'))).toHaveLength(1);
    expect(upstream.find((l) => l.status === 200).bytes).toBeGreaterThan(100);
    expect(logs.filter((l) => l.msg === 'joined running upstream fetch' && l.path === 'logged/-/_packument.json').length).toBeGreaterThan(0);
    expect(upstream.find((l) => l.upstream.includes('/-/v1/search')).upstream).toBe(`${reg.url}/-/v1/search?text=x&X-Amz-Signature=REDACTED`);
    expect(lines.join('')).not.toContain('hunter2');
    expect(JSON.stringify(upstream)).not.toContain('s3cr3tsig');
  });

  it('a virtual packument says where its parts came from', async () => {
    const a = await FakeRegistry.start(versions('merged', 2));
    const b = await FakeRegistry.start(versions('merged', 3));
    regs.push(a, b);
    srv = await startServer();
    await srv.addRepo({ name: 'up-a', format: 'npm', kind: 'remote', upstream: a.url });
    await srv.addRepo({ name: 'up-b', format: 'npm', kind: 'remote', upstream: b.url });
    await srv.addRepo({ name: 'mid', format: 'npm', kind: 'virtual', members: ['up-b'] });
    await srv.addRepo({ name: 'all', format: 'npm', kind: 'virtual', members: ['up-a', 'mid'] });
    const first = await fetch(`${srv.url}/all/merged`);
    expect(Object.keys((await first.json()).versions)).toEqual(['1.0.0', '1.1.0', '1.2.0']);
    expect(first.headers.get('x-artifact-source')).toBe('remote');
    expect(first.headers.get('x-artifact-parts')).toBe('up-a=remote, up-b=remote');
    expect(first.headers.get('x-artifact-repo')).toBe('all');
    const again = await fetch(`${srv.url}/all/merged`);
    await again.arrayBuffer();
    expect(again.headers.get('x-artifact-source')).toBe('cache');
    expect(again.headers.get('x-artifact-parts')).toBe('up-a=cache, up-b=cache');
  });
});
