import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupScratch, closedPort, ensureDist, spawnServe } from '../cli/bin.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(f: () => T | undefined | false, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(50);
  }
}

describe('serve runs supervised', () => {
  beforeAll(() => ensureDist());
  afterAll(() => cleanupScratch());

  it('a worker that dies is restarted (the exit signal logged) and serves again on the same port; SIGTERM then exits 0', async () => {
    const port = await closedPort();
    const srv = await spawnServe(['--port', String(port)]);
    try {
      const workers = () => srv.logs().filter((l) => l.msg === 'worker listening').map((l) => l.pid as number);
      const first = await until(() => workers()[0]);
      expect(first).not.toBe(srv.child.pid);
      expect((await fetch(`${srv.url}/health`)).status).toBe(200);

      process.kill(first, 'SIGKILL'); // as a crash in a socket handler would end it
      const died = await until(() => srv.logs().find((l) => l.msg === 'worker died; restarting'));
      expect(died).toMatchObject({ level: 50, pid: first, signal: 'SIGKILL' });
      const second = await until(() => workers()[1]);
      expect(second).not.toBe(first);
      expect(srv.child.exitCode).toBeNull();
      const again = await fetch(`http://127.0.0.1:${port}/health`);
      expect(again.status).toBe(200);

      expect(await srv.stop('SIGTERM')).toBe(0);
    } finally {
      await srv.stop('SIGKILL');
    }
  });

  it('--workers 2 starts two workers on one port; SIGTERM drains both and exits 0', async () => {
    const srv = await spawnServe(['--workers', '2']);
    try {
      const pids = await until(() => {
        const p = new Set(srv.logs().filter((l) => l.msg === 'worker listening').map((l) => l.pid));
        return p.size === 2 && p;
      });
      expect(pids.has(srv.child.pid)).toBe(false);
      for (let i = 0; i < 4; i++) expect((await fetch(`${srv.url}/health`)).status).toBe(200);
      expect(await srv.stop('SIGTERM')).toBe(0);
      for (const pid of pids) expect(() => process.kill(pid as number, 0)).toThrow();
    } finally {
      await srv.stop('SIGKILL');
    }
  });
});
