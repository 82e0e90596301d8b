import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cachedH1, H1_CACHE } from '../../../src/formats/terraform/zipfacts.js';
import type { Services } from '../../../src/repos/services.js';
import { startServer, type TestServer } from '../../helpers/server.js';
import { providerZip, sha256hex } from './terraform.js';

const h1s = (svc: Services) => svc.caches.lru<string>(H1_CACHE.name, H1_CACHE.maxBytes, H1_CACHE.maxEntries);

/** The `h1:` of stored provider zips is cached per server, within the cache's bound. */
describe('terraform h1 cache: bounded, per server', () => {
  let a: TestServer;
  let b: TestServer;
  const zips = ['1.0.0', '1.1.0', '1.2.0'].map((v) => ({ v, path: `v1/providers/acme/thing/${v}/linux_amd64.zip`, zip: providerZip('thing', v) }));
  beforeAll(async () => {
    [a, b] = await Promise.all([startServer(), startServer()]);
    a.svc.caches.lru(H1_CACHE.name, H1_CACHE.maxBytes, 2); // before first use: 2 entries
    for (const s of [a, b]) {
      await s.addRepo({ name: 'tf', format: 'terraform', kind: 'local' });
      for (const z of zips) expect((await fetch(`${s.url}/tf/${z.path}`, { method: 'PUT', body: new Uint8Array(z.zip) })).status).toBe(201);
    }
  });
  afterAll(async () => Promise.all([a?.close(), b?.close()]));

  /** The h1 the upload computed and stored with the row. */
  const storedH1 = async (srv: TestServer, path: string) => ((await srv.svc.meta.files.get('tf', path))!.meta as { h1: string }).h1;

  it('gives each stored zip\'s h1 and keeps at most the bound', async () => {
    for (const z of zips) {
      const h1 = await cachedH1(a.svc, 'tf', z.path, sha256hex(z.zip));
      expect(h1).toMatch(/^h1:[A-Za-z0-9+/]{43}=$/);
      expect(h1).toBe(await storedH1(a, z.path));
    }
    expect(h1s(a.svc).size).toBe(2);
    expect(h1s(a.svc).get(`sha256:${sha256hex(zips[0].zip)}`)).toBeUndefined();
    expect(h1s(a.svc).get(`sha256:${sha256hex(zips[2].zip)}`)).toBe(await storedH1(a, zips[2].path));
    // a shasum that is not the stored zip's gives nothing and caches nothing
    expect(await cachedH1(a.svc, 'tf', zips[0].path, sha256hex(zips[1].zip))).toBeUndefined();
    expect(h1s(a.svc).size).toBe(2);
  });

  it('two servers in one process do not share h1s', async () => {
    await cachedH1(a.svc, 'tf', zips[1].path, sha256hex(zips[1].zip));
    expect(h1s(a.svc).get(`sha256:${sha256hex(zips[1].zip)}`)).toBeDefined();
    expect(h1s(b.svc).size).toBe(0);
  });
});
