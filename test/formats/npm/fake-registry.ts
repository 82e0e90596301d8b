import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { startUpstream, type FakeUpstream } from '../../helpers/upstream.js';
import type { NpmScratch } from './npm-helpers.js';

export interface PackedVersion {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  data: Buffer;
  file: string;
}

/** Packs each package with the real `npm pack`. */
export async function packAll(s: NpmScratch, pkgs: { name: string; version: string; dependencies?: Record<string, string> }[]): Promise<PackedVersion[]> {
  const out: PackedVersion[] = [];
  for (const p of pkgs) {
    const packed = await s.pack(await s.makePackage(p));
    out.push({ ...p, ...packed });
  }
  return out;
}

/**
 * A real npm registry on loopback: full and abbreviated packuments (by Accept),
 * tarballs under /tarballs/ (not the usual layout, so a proxy must follow
 * dist.tarball), ETags with 304s. `corrupt` serves other bytes for a file.
 */
export class FakeRegistry {
  readonly versions: PackedVersion[] = [];
  corrupt = new Set<string>();
  down = false;
  notModified = 0;
  private constructor(readonly up: FakeUpstream) {}

  static async start(initial: PackedVersion[] = []): Promise<FakeRegistry> {
    // The handler runs only once requests arrive, after `registry` is set.
    const up = await startUpstream((req, res) => registry.serve(req, res));
    const registry = new FakeRegistry(up);
    registry.versions.push(...initial);
    return registry;
  }

  get url(): string {
    return this.up.url;
  }

  tarballPath(v: PackedVersion): string {
    return `/tarballs/${v.name.replace('/', '__')}/${v.file}`;
  }

  packument(name: string, abbreviated: boolean): Record<string, unknown> | null {
    const vs = this.versions.filter((v) => v.name === name);
    if (vs.length === 0) return null;
    const versions: Record<string, unknown> = {};
    for (const v of vs) {
      const dist = {
        tarball: `${this.up.url}${this.tarballPath(v)}`,
        shasum: createHash('sha1').update(v.data).digest('hex'),
        integrity: `sha512-${createHash('sha512').update(v.data).digest('base64')}`,
      };
      versions[v.version] = abbreviated
        ? { name, version: v.version, dependencies: v.dependencies ?? {}, dist }
        : { name, version: v.version, description: `the ${name} package`, dependencies: v.dependencies ?? {}, readme: 'long readme', dist };
    }
    const latest = vs[vs.length - 1].version;
    return abbreviated
      ? { name, modified: '2026-01-01T00:00:00.000Z', 'dist-tags': { latest }, versions }
      : { _id: name, _rev: '3-abc', name, description: `the ${name} package`, 'dist-tags': { latest }, versions, time: { modified: '2026-01-01T00:00:00.000Z' } };
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    if (this.down) {
      res.writeHead(503).end('down');
      return;
    }
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]);
    if (path.startsWith('/tarballs/')) {
      const v = this.versions.find((x) => this.tarballPath(x) === path);
      if (!v) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      const data = this.corrupt.has(v.file) ? Buffer.concat([v.data.subarray(0, v.data.length - 1), Buffer.from([v.data[v.data.length - 1] ^ 1])]) : v.data;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(data.length) });
      res.end(data);
      return;
    }
    const abbreviated = /application\/vnd\.npm\.install-v1\+json/.test(req.headers.accept ?? '');
    const doc = this.packument(path.slice(1), abbreviated);
    if (!doc) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
    const body = Buffer.from(JSON.stringify(doc));
    const etag = `"${createHash('sha1').update(body).digest('hex')}"`;
    if (req.headers['if-none-match'] === etag) {
      this.notModified++;
      return void res.writeHead(304, { etag }).end();
    }
    res.writeHead(200, { 'content-type': abbreviated ? 'application/vnd.npm.install-v1+json' : 'application/json', etag, 'content-length': String(body.length) });
    res.end(body);
  }

  close(): Promise<void> {
    return this.up.close();
  }
}
