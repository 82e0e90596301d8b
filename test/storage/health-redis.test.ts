import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';

const hasRedis = spawnSync('redis-server', ['--version']).status === 0;
const freePort = () => new Promise<number>((r) => { const s = createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => r(p)); }); });

describe.skipIf(!hasRedis)('health with Redis configured', () => {
  let srv: TestServer | undefined;
  let redis: ReturnType<typeof spawn> | undefined;
  afterAll(async () => {
    await srv?.close();
    if (redis?.exitCode === null) redis.kill();
  });

  it('answers 503 when the shared Redis goes away, 200 again when it is back', async () => {
    const port = await freePort();
    const startRedis = async () => {
      redis = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
      for (let i = 0; i < 50; i++) {
        await new Promise((r) => setTimeout(r, 100));
        if (await fetch(`http://127.0.0.1:${port}`).then(() => true, (e) => !String(e.cause?.code).includes('ECONNREFUSED'))) return;
      }
    };
    await startRedis();
    srv = await startServer({ 'redis.url': `redis://127.0.0.1:${port}` });
    expect((await fetch(`${srv.url}/health`)).status).toBe(200);
    redis!.kill();
    await new Promise((r) => redis!.once('exit', r));
    const down = await fetch(`${srv.url}/health`);
    expect(down.status).toBe(503);
    expect(await down.json()).toEqual({ status: 'unavailable' });
    await startRedis();
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = (await fetch(`${srv.url}/health`)).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 200));
    }
    expect(status).toBe(200);
  });
});
