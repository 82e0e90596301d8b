#!/usr/bin/env node
// A static mock upstream for the e2e suite: serves e2e-docker/fixtures/ (or $FIXTURES_DIR)
// with Content-Length, ETag, Last-Modified, HEAD and If-None-Match, and counts hits.
//   GET /__hits            -> {"<path>": n, ...}
//   GET /slow/<path>       -> <path>, streamed in 16 KiB chunks 20 ms apart (concurrent-miss tests)
//   a directory            -> its index.html or index.json (pypi simple pages, npm packuments)
//   …/v2/<image>/manifests/<ref>, …/v2/<image>/blobs/<digest> -> plus Docker-Content-Digest (sha256 of
//                             the file); a manifest's Content-Type is its own `mediaType`
//   node e2e-docker/mock-upstream.mjs [--port 8080] [--host 0.0.0.0]
// No dependencies, so it runs in a plain node image.
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const arg = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const root = resolve(process.env.FIXTURES_DIR ?? join(dirname(fileURLToPath(import.meta.url)), 'fixtures'));
const port = Number(arg('--port', process.env.PORT ?? '8080'));
const host = arg('--host', process.env.HOST ?? '0.0.0.0');
const TYPES = {
  '.json': 'application/json', '.gz': 'application/gzip', '.tgz': 'application/gzip', '.zip': 'application/zip',
  '.xml': 'application/xml', '.yaml': 'text/yaml', '.yml': 'text/yaml', '.txt': 'text/plain', '.html': 'text/html',
  '.sha256': 'text/plain', '.whl': 'application/zip', '.rpm': 'application/x-rpm', '.apk': 'application/octet-stream',
};
const hits = new Map();
const etags = new Map();

const server = createServer(async (req, res) => {
  const path = decodeURIComponent((req.url ?? '/').split('?')[0]);
  if (path === '/__hits') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(Object.fromEntries(hits)));
    return;
  }
  if (path === '/__health') return void res.writeHead(200).end('ok');
  hits.set(path, (hits.get(path) ?? 0) + 1);
  const slow = path.startsWith('/slow/');
  let file = normalize(join(root, slow ? path.slice('/slow'.length) : path));
  if (!file.startsWith(root + sep)) return void res.writeHead(400).end('bad path');
  const stat = (f) => fsp.stat(f).catch(() => undefined);
  let st = await stat(file);
  if (st?.isDirectory()) {
    for (const index of ['index.html', 'index.json']) {
      const s = await stat(join(file, index));
      if (s?.isFile()) { file = join(file, index); st = s; break; }
    }
  }
  if (!st?.isFile()) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  let etag = etags.get(file);
  if (!etag || etag.mtime !== st.mtimeMs) {
    const bytes = await fsp.readFile(file);
    const hex = createHash('sha256').update(bytes).digest('hex');
    let mediaType;
    if (/\/v2\/.+\/manifests\/[^/]+$/.test(path)) {
      try { mediaType = JSON.parse(bytes.toString('utf8')).mediaType; } catch { mediaType = undefined; }
    }
    etag = { mtime: st.mtimeMs, value: `"${hex.slice(0, 32)}"`, digest: `sha256:${hex}`, mediaType };
    etags.set(file, etag);
  }
  const headers = {
    'content-type': etag.mediaType ?? TYPES[extname(file)] ?? 'application/octet-stream',
    'content-length': String(st.size), etag: etag.value, 'last-modified': st.mtime.toUTCString(),
  };
  if (/\/v2\/.+\/(manifests|blobs)\/[^/]+$/.test(path)) headers['docker-content-digest'] = etag.digest;
  if (req.headers['if-none-match'] === etag.value) return void res.writeHead(304, { etag: etag.value }).end();
  res.writeHead(200, headers);
  if (req.method === 'HEAD') return void res.end();
  if (!slow) return void createReadStream(file).pipe(res);
  const body = await fsp.readFile(file);
  for (let i = 0; i < body.length && !res.destroyed; i += 16384) {
    res.write(body.subarray(i, i + 16384));
    await new Promise((r) => setTimeout(r, 20));
  }
  res.end();
});
server.listen(port, host, () => {
  const a = server.address();
  process.stdout.write(`mock upstream serving ${root} on http://${a.address}:${a.port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
process.on('SIGINT', () => server.close(() => process.exit(0)));
