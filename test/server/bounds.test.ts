import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';

/** A raw client socket; resolves `closed` with what the server sent and how long the socket lived. */
async function rawClient(port: number): Promise<{ sock: Socket; closed: Promise<{ data: string; ms: number }> }> {
  const sock = connect(port, '127.0.0.1');
  await new Promise<void>((r) => sock.once('connect', () => r()));
  const t0 = Date.now();
  let data = '';
  sock.on('data', (c) => (data += c.toString('latin1')));
  sock.on('error', () => {});
  const closed = new Promise<{ data: string; ms: number }>((r) => sock.once('close', () => r({ data, ms: Date.now() - t0 })));
  return { sock, closed };
}

describe('server bounds against slow and idle clients (server.* keys)', () => {
  let srv: TestServer | undefined;
  const socks: Socket[] = [];
  afterEach(async () => {
    for (const s of socks.splice(0)) s.destroy();
    await srv?.close();
    srv = undefined;
  });

  it('cuts a client that never finishes its headers after headers_timeout', async () => {
    srv = await startServer({ 'server.headers_timeout': '400ms', 'server.request_timeout': '10s' });
    const c = await rawClient(srv.port);
    socks.push(c.sock);
    c.sock.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: '); // never ends the headers
    const { data, ms } = await c.closed;
    expect(ms).toBeGreaterThanOrEqual(350);
    expect(ms).toBeLessThan(3000);
    expect(data).toMatch(/^HTTP\/1\.1 408/);
    // The server still answers others.
    expect((await fetch(`${srv.url}/health`)).status).toBe(200);
  });

  it('cuts a request whose body never completes after request_timeout', async () => {
    srv = await startServer({ 'server.headers_timeout': '300ms', 'server.request_timeout': '800ms' });
    await srv.addRepo({ name: 'g', format: 'generic', kind: 'local' });
    const c = await rawClient(srv.port);
    socks.push(c.sock);
    c.sock.write('PUT /g/slow.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nabc');
    const timer = setInterval(() => c.sock.writable && c.sock.write('x'), 100); // a trickle, never the whole body
    const { ms } = await c.closed.finally(() => clearInterval(timer));
    expect(ms).toBeLessThan(4000);
    expect(await srv.svc.meta.files.get('g', 'slow.bin')).toBeNull();
  });

  it('closes an idle keep-alive connection after keep_alive_timeout', async () => {
    srv = await startServer({ 'server.keep_alive_timeout': '300ms' });
    const c = await rawClient(srv.port);
    socks.push(c.sock);
    c.sock.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const { data, ms } = await c.closed;
    expect(data).toMatch(/^HTTP\/1\.1 200/);
    expect(ms).toBeLessThan(3000);
  });

  it('refuses connections beyond max_connections, and serves again once they go', async () => {
    srv = await startServer({ 'server.max_connections': 2 });
    const held = await Promise.all([rawClient(srv.port), rawClient(srv.port)]);
    socks.push(...held.map((h) => h.sock));
    const extra = await rawClient(srv.port);
    socks.push(extra.sock);
    extra.sock.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const { data } = await extra.closed;
    expect(data).toBe('');
    for (const h of held) h.sock.destroy();
    await Promise.all(held.map((h) => h.closed));
    await new Promise((r) => setTimeout(r, 50));
    expect((await fetch(`${srv.url}/health`)).status).toBe(200);
  });
});
