import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { normalizeName } from '../../../src/formats/pypi/names.js';
import type { Dist } from './clients.js';

/** One file as a fake upstream index lists it. */
export interface UpstreamFile {
  project: string;
  dist: Dist;
  metadata?: Buffer;
  requiresPython?: string;
  yanked?: string;
  /** List this sha256 instead of the real one (a tampered or broken upstream). */
  listedSha256?: string;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * A PyPI-like upstream, as two real servers would be: the index serves pages
 * (PEP 691 JSON when `json` and the client asks for it, else PEP 503 HTML)
 * whose file URLs are absolute on `filesBase` (another host, like
 * files.pythonhosted.org); `filesHandler` serves the files and `.metadata`.
 */
export function upstreamIndex(files: () => UpstreamFile[], filesBase: () => string, o: { json?: boolean } = {}) {
  const index = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    const m = /^\/simple\/([^/]+)\/$/.exec(path);
    if (path === '/simple/') {
      const names = [...new Set(files().map((f) => f.project))];
      res.writeHead(200, { 'content-type': 'text/html' }).end(names.map((n) => `<a href="/simple/${normalizeName(n)}/">${n}</a>`).join('\n'));
      return;
    }
    const list = m ? files().filter((f) => normalizeName(f.project) === m[1]) : [];
    if (!m || list.length === 0) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const url = (f: UpstreamFile) => `${filesBase()}/files/${f.project}/${encodeURIComponent(f.dist.filename)}`;
    let body: string;
    let type: string;
    if (o.json && /application\/vnd\.pypi\.simple\.v1\+json/.test(req.headers.accept ?? '')) {
      type = 'application/vnd.pypi.simple.v1+json';
      body = JSON.stringify({
        meta: { 'api-version': '1.1' },
        name: m[1],
        files: list.map((f) => ({
          filename: f.dist.filename,
          url: url(f),
          hashes: { sha256: f.listedSha256 ?? f.dist.sha256 },
          'requires-python': f.requiresPython ?? null,
          'core-metadata': f.metadata ? { sha256: sha(f.metadata) } : false,
          yanked: f.yanked === undefined ? false : f.yanked || true,
          size: f.dist.bytes.length,
        })),
      });
    } else {
      type = 'text/html';
      body = `<!DOCTYPE html><html><body><h1>Links for ${m[1]}</h1>\n${list.map((f) => {
        let a = `<a href="${esc(url(f))}#sha256=${f.listedSha256 ?? f.dist.sha256}"`;
        if (f.requiresPython) a += ` data-requires-python="${esc(f.requiresPython)}"`;
        if (f.metadata) a += ` data-dist-info-metadata="sha256=${sha(f.metadata)}"`;
        if (f.yanked !== undefined) a += ` data-yanked="${esc(f.yanked)}"`;
        return `${a}>${esc(f.dist.filename)}</a><br/>`;
      }).join('\n')}\n</body></html>`;
    }
    const etag = `"${sha(Buffer.from(body)).slice(0, 16)}"`;
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { etag }).end();
      return;
    }
    res.writeHead(200, { 'content-type': type, etag }).end(body);
  };

  const filesHandler = (req: IncomingMessage, res: ServerResponse) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]);
    for (const f of files()) {
      const base = `/files/${f.project}/${f.dist.filename}`;
      const body = path === base ? f.dist.bytes : path === `${base}.metadata` ? f.metadata : undefined;
      if (body) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) }).end(body);
        return;
      }
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  };
  return { index, filesHandler };
}
