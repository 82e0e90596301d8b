import { spawn, type ChildProcess } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';

const ON_STACK = process.env.ARTIFACTAPI_TEST_STACK === '1';

/** Another process (a backup tool, gc, a second instance) holding the SQLite write lock until killed. */
async function holdWriteLock(dbFile: string): Promise<ChildProcess> {
  const script = `
    const db = new (require('better-sqlite3'))(process.argv[1]);
    db.exec('BEGIN IMMEDIATE');
    db.prepare('INSERT INTO repos (name, format, kind, created_at) VALUES (?, ?, ?, ?)').run('held', 'generic', 'local', Date.now());
    process.stdout.write('locked\\n');
    setTimeout(() => {}, 60000);`;
  const child = spawn(process.execPath, ['-e', script, dbFile], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
    child.on('exit', (code) => reject(new Error(`lock holder exited with ${code}`)));
  });
  return child;
}

describe.skipIf(ON_STACK)('a metadata database locked by another process', () => {
  let srv: TestServer | undefined;
  let holder: ChildProcess | undefined;
  afterEach(async () => {
    holder?.kill('SIGKILL');
    await srv?.close();
  });

  it('cached reads keep flowing; a write waits database.busy_timeout without stalling, then 503 + Retry-After; nothing half-written', async () => {
    srv = await startServer({ 'database.busy_timeout': '1500ms' });
    await srv.addRepo({ name: 'files', format: 'generic', kind: 'local' });
    const a = Buffer.alloc(300 * 1024, 7);
    expect((await fetch(`${srv.url}/files/a.bin`, { method: 'PUT', body: a })).status).toBe(201);

    holder = await holdWriteLock(join(srv.dataDir, 'artifactapi.db'));
    const t0 = Date.now();
    const put = fetch(`${srv.url}/files/b.bin`, { method: 'PUT', body: Buffer.alloc(200 * 1024, 9) });
    // While the write waits for the lock, reads answer at once.
    let reads = 0;
    while (Date.now() - t0 < 1200) {
      const r0 = Date.now();
      const got = await fetch(`${srv.url}/files/a.bin`);
      expect(got.status).toBe(200);
      expect(Buffer.from(await got.arrayBuffer()).equals(a)).toBe(true);
      // (a blocked event loop would hold every one of them for the whole wait; the bound allows for a loaded machine)
      expect(Date.now() - r0).toBeLessThan(1000);
      reads++;
    }
    expect(reads).toBeGreaterThan(1);

    const res = await put;
    const waited = Date.now() - t0;
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(await res.json()).toEqual({ error: { code: 'UNAVAILABLE', message: expect.any(String) } });
    expect(waited).toBeGreaterThanOrEqual(1400);
    expect(waited).toBeLessThan(6000);
    // Nothing of b was kept: no row, no temp file.
    expect(await readdir(srv.svc.blob.tempDir)).toEqual([]);

    holder.kill('SIGKILL');
    await new Promise((r) => holder!.once('exit', r));
    expect((await fetch(`${srv.url}/files/b.bin`)).status).toBe(404);
    expect((await fetch(`${srv.url}/files/b.bin`, { method: 'PUT', body: Buffer.alloc(200 * 1024, 9) })).status).toBe(201);
  });
});
