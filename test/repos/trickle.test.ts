import { get } from 'node:http';
import { readdir } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';
import { startUpstream, type FakeUpstream } from '../helpers/upstream.js';

/** GET that resolves with how the transfer ended: complete or cut, and when. */
function transfer(url: string): Promise<{ status: number; bytes: number; complete: boolean; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let bytes = 0;
      const done = (complete: boolean) => resolve({ status: res.statusCode!, bytes, complete, ms: Date.now() - t0 });
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('error', () => done(false));
      res.on('end', () => done(res.complete));
    }).on('error', reject);
  });
}

describe('an upstream that trickles', () => {
  let srv: TestServer | undefined;
  let up: FakeUpstream | undefined;
  let stop = false;
  afterEach(async () => {
    stop = true;
    await srv?.close();
    await up?.close();
  });

  async function trickling(repo: Record<string, unknown>, flags: Record<string, unknown> = {}) {
    stop = false;
    // 1 byte every 250 ms of a declared 1 MiB: never silent for long, never done.
    up = await startUpstream(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(1 << 20) });
      while (!stop && !res.destroyed) {
        res.write('x');
        await new Promise((r) => setTimeout(r, 250));
      }
      res.destroy();
    });
    srv = await startServer(flags);
    await srv.addRepo({ name: 'slow', format: 'generic', kind: 'remote', upstream: `${up.url}/`, ...repo });
  }

  const nothingLeft = async (s: TestServer) => {
    expect(await s.svc.meta.files.get('slow', 'f.bin')).toBeNull();
    expect(await readdir(s.svc.blob.tempDir)).toEqual([]);
  };

  it('below the repo min_rate over an idle_timeout window: the client gets a cut transfer and nothing is cached', async () => {
    await trickling({ idle_timeout: '1s', min_rate: '1KiB' });
    const r = await transfer(`${srv!.url}/slow/f.bin`);
    expect(r.status).toBe(200);
    expect(r.complete).toBe(false);
    expect(r.ms).toBeLessThan(5000);
    await nothingLeft(srv!);
  });

  it('past the repo fill_timeout, even with min_rate "0": cut, nothing cached', async () => {
    await trickling({ idle_timeout: '10s', min_rate: '0', fill_timeout: '2s' });
    const r = await transfer(`${srv!.url}/slow/f.bin`);
    expect(r.complete).toBe(false);
    expect(r.ms).toBeGreaterThanOrEqual(1900);
    expect(r.ms).toBeLessThan(6000);
    await nothingLeft(srv!);
  });

  it('[remote] min_rate is the default for every remote repo', async () => {
    await trickling({}, { 'remote.idle_timeout': '1s', 'remote.min_rate': '512' });
    const r = await transfer(`${srv!.url}/slow/f.bin`);
    expect(r.complete).toBe(false);
    expect(r.ms).toBeLessThan(5000);
    await nothingLeft(srv!);
  });
});
