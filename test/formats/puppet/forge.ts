import Fastify, { type FastifyInstance } from 'fastify';
import { md5hex, sha256hex } from './modules.js';

export interface ForgeRelease {
  name: string;
  version: string;
  metadata: Record<string, unknown>;
  tgz: Buffer;
  /** Where the Forge says the tarball is (default `/v3/files/<slug>.tar.gz`). */
  fileUri?: string;
  /** Checksums listed: default sha256 and md5 of the tarball. */
  sha256?: string | null;
  md5?: string | null;
}

export interface FakeForge {
  url: string;
  /** Requests seen: `METHOD url` -> count. */
  hits: Map<string, number>;
  count(prefix: string): number;
  add(r: ForgeRelease): void;
  /** While down, every request is a 503. */
  down: boolean;
  close(): Promise<void>;
}

/** A small Forge v3 API on 127.0.0.1:0: paged release lists, releases, modules and tarballs. */
export async function startForge(): Promise<FakeForge> {
  const releases: ForgeRelease[] = [];
  const files = new Map<string, Buffer>();
  const hits = new Map<string, number>();
  const app: FastifyInstance = Fastify();
  const state = { down: false };
  const slug = (r: ForgeRelease) => `${r.name}-${r.version}`;
  const render = (r: ForgeRelease) => ({
    uri: `/v3/releases/${slug(r)}`, slug: slug(r), version: r.version, metadata: r.metadata,
    module: { uri: `/v3/modules/${r.name}`, slug: r.name, name: r.name.split('-')[1], deprecated_at: null, owner: { slug: r.name.split('-')[0] } },
    file_uri: r.fileUri ?? `/v3/files/${slug(r)}.tar.gz`, file_size: r.tgz.length,
    file_md5: r.md5 === undefined ? md5hex(r.tgz) : r.md5, file_sha256: r.sha256 === undefined ? sha256hex(r.tgz) : r.sha256,
    created_at: '2024-01-01 00:00:00 -0800', deleted_at: null,
  });
  const newest = (name: string) => releases.filter((r) => r.name === name).sort((a, b) => (a.version < b.version ? 1 : -1));
  app.addHook('onRequest', async (req, reply) => {
    const key = `${req.method} ${req.url}`;
    hits.set(key, (hits.get(key) ?? 0) + 1);
    if (state.down) return reply.code(503).send({ message: 'down' });
  });
  app.get('/v3/releases', async (req) => {
    const q = req.query as Record<string, string>;
    const limit = Number(q.limit ?? 20);
    const offset = Number(q.offset ?? 0);
    const all = newest(q.module);
    const next = offset + limit < all.length ? `/v3/releases?module=${q.module}&limit=${limit}&offset=${offset + limit}` : null;
    return { pagination: { limit, offset, total: all.length, next }, results: all.slice(offset, offset + limit).map(render) };
  });
  app.get('/v3/releases/:slug', async (req, reply) => {
    const r = releases.find((x) => slug(x) === (req.params as { slug: string }).slug);
    return r ? render(r) : reply.code(404).send({ message: 'Not Found', errors: ['release not found'] });
  });
  app.get('/v3/modules/:name', async (req, reply) => {
    const list = newest((req.params as { name: string }).name);
    if (!list.length) return reply.code(404).send({ message: 'Not Found' });
    return { slug: list[0].name, current_release: render(list[0]), releases: list.map((r) => ({ slug: slug(r), version: r.version })) };
  });
  app.get('/*', async (req, reply) => {
    const body = files.get(req.url.split('?')[0]);
    if (!body) return reply.code(404).send({ message: 'Not Found' });
    return reply.type('application/octet-stream').send(body);
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  return {
    url,
    hits,
    count(prefix) {
      let n = 0;
      for (const [k, v] of hits) if (k.split(' ')[1].startsWith(prefix)) n += v;
      return n;
    },
    add(r) {
      releases.push(r);
      files.set(r.fileUri ?? `/v3/files/${slug(r)}.tar.gz`, r.tgz);
    },
    get down() {
      return state.down;
    },
    set down(v: boolean) {
      state.down = v;
    },
    close: () => app.close(),
  };
}
