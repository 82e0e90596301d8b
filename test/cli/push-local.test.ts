import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUpstream } from '../helpers/upstream.js';
import { which } from '../helpers/which.js';
import { BIN, cleanEnv, closedPort, cleanupScratch, ensureDist, runCli, scratchDir, spawnServe, type ServeProcess } from './bin.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const hasScript = which('script'); // util-linux, gives the CLI a pseudo-TTY

describe('artifactapi push-local against a spawned server', () => {
  let srv: ServeProcess;
  let dir: string;
  const big = randomBytes(3 * 1024 * 1024 + 17);
  const small = Buffer.from('hello push-local\n');

  beforeAll(async () => {
    ensureDist();
    srv = await spawnServe();
    dir = scratchDir();
    writeFileSync(join(dir, 'big.bin'), big);
    writeFileSync(join(dir, 'small.txt'), small);
    for (const args of [
      ['repo', 'add', 'files', '--format', 'generic', '--kind', 'local'],
      ['repo', 'add', 'mirror', '--format', 'generic', '--kind', 'remote', '--upstream', 'http://127.0.0.1:9/'],
      ['repo', 'add', 'all', '--format', 'generic', '--kind', 'virtual', '--member', 'files', '--member', 'mirror', '--default-local', 'files'],
    ]) {
      const r = await runCli([...args, '--url', srv.url]);
      expect(r.code, r.stderr).toBe(0);
    }
  });
  afterAll(async () => {
    await srv?.stop();
    cleanupScratch();
  });

  it('uploads two files under --path, prints the stored sha256 per file, and they download byte-equal', async () => {
    const r = await runCli(['push-local', 'files', join(dir, 'big.bin'), join(dir, 'small.txt'), '--path', 'rel/1.0', '--url', srv.url]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toEqual([
      `${sha(big)}  files/rel/1.0/big.bin  ${big.length} bytes`,
      `${sha(small)}  files/rel/1.0/small.txt  ${small.length} bytes`,
    ]);
    expect(r.stdout).not.toMatch(/\x1b\[/); // no terminal codes when stdout is a pipe
    for (const [name, body] of [['big.bin', big], ['small.txt', small]] as const) {
      const res = await fetch(`${srv.url}/files/rel/1.0/${name}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('x-artifact-source')).toBe('local');
      expect(Buffer.from(await res.arrayBuffer()).equals(body)).toBe(true);
    }
  });

  it('a single file with --path lands at exactly that path; --json prints what the server stored', async () => {
    const r = await runCli(['push-local', 'files', join(dir, 'small.txt'), '--path', 'exact/name.txt', '--url', srv.url, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    expect(out).toEqual([{ file: join(dir, 'small.txt'), repo: 'files', path: 'exact/name.txt', url: `${srv.url}/files/exact/name.txt`, size: small.length, sha256: sha(small) }]);
    const res = await fetch(`${srv.url}/files/exact/name.txt`);
    expect(Buffer.from(await res.arrayBuffer()).equals(small)).toBe(true);
  });

  it('with no --path each file goes to its base name; ARTIFACTAPI_URL stands in for --url', async () => {
    const r = await runCli(['push-local', 'files', join(dir, 'small.txt')], { env: { ARTIFACTAPI_URL: srv.url } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`${sha(small)}  files/small.txt  ${small.length} bytes`);
  });

  it('through a virtual repo the file lands in its default_local member, which the output names; an empty file works', async () => {
    writeFileSync(join(dir, 'empty'), '');
    const r = await runCli(['push-local', 'all', join(dir, 'empty'), '--path', 'via/virtual/', '--url', srv.url]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`${sha(Buffer.alloc(0))}  files/via/virtual/empty  0 bytes`);
    const res = await fetch(`${srv.url}/files/via/virtual/empty`);
    expect(res.status).toBe(200);
    expect((await res.arrayBuffer()).byteLength).toBe(0);
  });

  it('a remote repo refuses with the server 405 message: one stderr line, non-zero exit', async () => {
    const direct = await fetch(`${srv.url}/mirror/x.txt`, { method: 'PUT', body: 'x' });
    expect(direct.status).toBe(405);
    const message = ((await direct.json()) as { error: { message: string } }).error.message;
    const r = await runCli(['push-local', 'mirror', join(dir, 'big.bin'), '--url', srv.url]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(message);
    expect(r.stderr).toContain('HTTP 405');
  });

  it('a missing file or an unreachable server is one stderr line and a non-zero exit', async () => {
    const missing = await runCli(['push-local', 'files', join(dir, 'nope.bin'), '--url', srv.url]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr.trim().split('\n')).toEqual([`artifactapi: ${join(dir, 'nope.bin')}: cannot read (ENOENT)`]);
    const port = await closedPort();
    const down = await runCli(['push-local', 'files', join(dir, 'small.txt'), '--url', `http://127.0.0.1:${port}`]);
    expect(down.code).not.toBe(0);
    expect(down.stderr.trim().split('\n')).toHaveLength(1);
    expect(down.stderr).toContain(`cannot reach http://127.0.0.1:${port} (ECONNREFUSED)`);
  });

  it('a server that reports another sha256 than the bytes sent is a failure', async () => {
    let received = 0;
    const liar = await startUpstream(async (req, res) => {
      for await (const c of req) received += (c as Buffer).length;
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ repo: 'files', path: 'big.bin', sha256: '0'.repeat(64), size: received }));
    });
    try {
      const r = await runCli(['push-local', 'files', join(dir, 'big.bin'), '--url', liar.url]);
      expect(received).toBe(big.length);
      expect(r.code).not.toBe(0);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toEqual([`artifactapi: ${join(dir, 'big.bin')}: sha256 mismatch: sent ${sha(big)}, server stored ${'0'.repeat(64)}`]);
    } finally {
      await liar.close();
    }
  });

  describe.skipIf(!hasScript)('on a terminal (pseudo-TTY from util-linux script)', () => {
    it('draws an ink progress bar per file and ends with the sha256', async () => {
      const cmd = `stty cols 100 rows 40; exec ${process.execPath} ${BIN} push-local files ${join(dir, 'big.bin')} ${join(dir, 'small.txt')} --path tty --url ${srv.url}`;
      const { code, out } = await inTerminal(cmd);
      expect(code, out).toBe(0);
      expect(out).toMatch(/\x1b\[/); // ink drew with terminal codes
      expect(out).toContain('█'.repeat(30)); // a full bar
      expect(out).toContain('100%');
      expect(out).toContain(`sha256 ${sha(big)}`);
      expect(out).toContain(`sha256 ${sha(small)}`);
      expect(out).toContain('files/tty/big.bin');
      const res = await fetch(`${srv.url}/files/tty/big.bin`);
      expect(Buffer.from(await res.arrayBuffer()).equals(big)).toBe(true);
    });

    it('redraws the bar while a slow server takes the bytes', async () => {
      // A server that reads the body slowly (backpressure reaches the client), then answers honestly.
      const slow = await startUpstream(async (req, res) => {
        const h = createHash('sha256');
        let size = 0;
        for await (const c of req) {
          h.update(c as Buffer);
          size += (c as Buffer).length;
          await new Promise((r) => setTimeout(r, 5));
        }
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ repo: 'files', path: 'big.bin', sha256: h.digest('hex'), size }));
      });
      // Larger than what the loopback socket buffers absorb at once (tcp_wmem max 4 MiB here).
      const large = Buffer.alloc(32 * 1024 * 1024, 7);
      writeFileSync(join(dir, 'large.bin'), large);
      try {
        const cmd = `stty cols 100 rows 40; exec ${process.execPath} ${BIN} push-local files ${join(dir, 'large.bin')} --url ${slow.url}`;
        const { code, out } = await inTerminal(cmd);
        expect(code, out).toBe(0);
        const percents = [...out.matchAll(/ (\d{1,3})% /g)].map((m) => Number(m[1]));
        expect(percents.some((p) => p > 0 && p < 100), `frames: ${percents.join(',')}`).toBe(true);
        expect(percents.at(-1)).toBe(100);
        expect(out).toContain(`sha256 ${sha(large)}`);
      } finally {
        await slow.close();
      }
    });
  });
});

/** A terminal session as a person has it: ink draws only the final frame when it sees CI=true. */
function terminalEnv(): NodeJS.ProcessEnv {
  const env = cleanEnv({ TERM: 'xterm-256color' });
  delete env.CI;
  delete env.CONTINUOUS_INTEGRATION;
  return env;
}

/** Runs a shell command under a pseudo-terminal (util-linux script) and collects what it drew. */
function inTerminal(cmd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((res) => {
    const child = spawn('script', ['-qec', cmd, '/dev/null'], { env: terminalEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('close', (c) => res({ code: c, out }));
  });
}
