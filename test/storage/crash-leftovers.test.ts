import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupScratch, ensureDist, runCli, scratchDir, spawnServe, type ServeProcess } from '../cli/bin.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function until<T>(f: () => T | undefined | false, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(50);
  }
}

/** Spooled files anywhere under data/cas/tmp, with their sizes (the owner lock files aside). */
function tempFiles(dataDir: string): { dir: string; file: string; size: number }[] {
  const walk = (dir: string): { dir: string; file: string; size: number }[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const file = join(dir, e.name);
    if (e.isDirectory()) return walk(file);
    return e.name.endsWith('.owner') ? [] : [{ dir, file, size: statSync(file).size }];
  });
  return walk(join(dataDir, 'cas', 'tmp'));
}

/** A PUT that sends `first` bytes of `body` now and the rest when `finish()` is called. */
function startUpload(url: string, body: Buffer, first: number): { req: ClientRequest; finish(): Promise<number> } {
  const req = request(url, { method: 'PUT', agent: false, headers: { 'content-length': String(body.length) } });
  const res = new Promise<IncomingMessage>((resolve, reject) => req.on('response', resolve).on('error', reject));
  res.catch(() => {});
  req.write(body.subarray(0, first));
  return {
    req,
    async finish() {
      req.end(body.subarray(first));
      const r = await res;
      r.resume();
      return r.statusCode!;
    },
  };
}

const workerPid = async (srv: ServeProcess) => until(() => srv.logs().find((l) => l.msg === 'worker listening')?.pid as number | undefined);

/** SIGKILL of the whole serve, worker and primary, as a host crash or an OOM kill would do. */
async function killHard(srv: ServeProcess): Promise<void> {
  const worker = await workerPid(srv);
  process.kill(worker, 'SIGKILL');
  srv.child.kill('SIGKILL');
  await srv.exited;
  await until(() => { try { process.kill(worker, 0); return false; } catch { return true; } });
}

describe('temp files of a process killed mid-upload', () => {
  beforeAll(() => ensureDist());
  afterAll(() => cleanupScratch());

  it('are removed at once by the next start and by the next gc, never those of a live second process', async () => {
    const dataDir = join(scratchDir(), 'data');
    const body = randomBytes(24 * 1024 * 1024);

    // 1. A serve is SIGKILLed with 8 MiB of an upload spooled.
    const crashed = await spawnServe([], { dataDir });
    expect((await runCli(['repo', 'add', 'files', '--format', 'generic', '--kind', 'local', '--url', crashed.url])).code).toBe(0);
    const lost = startUpload(`${crashed.url}/files/lost.bin`, body, 8 * 1024 * 1024);
    lost.req.on('error', () => {});
    const left = await until(() => tempFiles(dataDir).find((f) => f.size >= 4 * 1024 * 1024));
    await killHard(crashed);
    expect(existsSync(left.file)).toBe(true); // what the crash leaves behind

    // 2. The restarted server removes it before it listens.
    const live = await spawnServe([], { dataDir });
    try {
      expect(existsSync(left.file)).toBe(false);
      expect(tempFiles(dataDir)).toEqual([]);

      // 3. A live upload in `live`, then a second process crashes with its own upload spooled.
      const kept = startUpload(`${live.url}/files/kept.bin`, body, 8 * 1024 * 1024);
      const liveFile = await until(() => tempFiles(dataDir).find((f) => f.size >= 4 * 1024 * 1024));
      const second = await spawnServe([], { dataDir });
      expect(existsSync(liveFile.file)).toBe(true); // a starting process leaves a live one's files alone
      const lost2 = startUpload(`${second.url}/files/lost2.bin`, body, 8 * 1024 * 1024);
      lost2.req.on('error', () => {});
      const left2 = await until(() => tempFiles(dataDir).find((f) => f.dir !== liveFile.dir && f.size >= 4 * 1024 * 1024));
      await killHard(second);

      // 4. gc (from cron, while `live` serves) removes the dead one's at once, keeps the live one's.
      const gc = await runCli(['gc', '--json'], { env: { ARTIFACTAPI_DATA_DIR: dataDir } });
      expect(gc.code, gc.stderr).toBe(0);
      expect(existsSync(left2.file)).toBe(false);
      expect(existsSync(liveFile.file)).toBe(true);
      const report = JSON.parse(gc.stdout) as { actions: { action: string; path?: string }[] };
      expect(report.actions).toContainEqual(expect.objectContaining({ action: 'delete-temp', path: left2.dir }));

      // The live upload was never disturbed.
      expect(await kept.finish()).toBe(201);
      const got = Buffer.from(await (await fetch(`${live.url}/files/kept.bin`)).arrayBuffer());
      expect(sha(got)).toBe(sha(body));
      expect((await fetch(`${live.url}/files/lost.bin`)).status).toBe(404);
      // A clean exit leaves no temp dir behind either.
      expect(await live.stop()).toBe(0);
      expect(readdirSync(join(dataDir, 'cas', 'tmp'))).toEqual([]);
    } finally {
      await live.stop('SIGKILL');
    }
  });
});
