import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface FakeUpstream {
  url: string;
  /** Requests seen, by path (method + ' ' + url). */
  hits: Map<string, number>;
  count(pathPrefix?: string): number;
  /** Swap the handler mid-test (go down, start failing...). */
  handle(h: UpstreamHandler): void;
  close(): Promise<void>;
}

/** A real HTTP server on 127.0.0.1:0 that serves what the test says and counts hits. */
export async function startUpstream(handler: UpstreamHandler): Promise<FakeUpstream> {
  let current = handler;
  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const key = `${req.method} ${req.url}`;
    hits.set(key, (hits.get(key) ?? 0) + 1);
    Promise.resolve(current(req, res)).catch((err) => {
      res.destroy(err as Error);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    count(prefix = '') {
      let n = 0;
      for (const [k, v] of hits) if (k.split(' ')[1].startsWith(prefix)) n += v;
      return n;
    },
    handle(h) {
      current = h;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Serves a map of path -> body (Buffer or string) with Content-Length and ETag; 404 otherwise. */
export function staticFiles(files: Record<string, Buffer | string>, contentType = 'application/octet-stream'): UpstreamHandler {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const body = files[path];
    if (body === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
    const etag = `"${buf.length}-${buf.subarray(0, 16).toString('hex')}"`;
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { etag }).end();
      return;
    }
    res.writeHead(200, { 'content-type': contentType, 'content-length': String(buf.length), etag });
    res.end(req.method === 'HEAD' ? undefined : buf);
  };
}
