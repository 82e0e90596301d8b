/**
 * Drives the real `bin/artifactapi` (dist/ built from src/) as a child process:
 * one-shot commands (runCli) and a long-running `serve` (spawnServe).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = join(ROOT, 'bin/artifactapi');

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** Builds dist/ when it is missing or older than src/ (`npm test` builds first, so usually a no-op). */
export function ensureDist(): void {
  const main = join(ROOT, 'dist/cli/main.js');
  const fresh = () => {
    try {
      return statSync(main).mtimeMs >= newest(join(ROOT, 'src'));
    } catch {
      return false;
    }
  };
  if (fresh()) return;
  const lock = join(ROOT, 'dist/.build-lock');
  mkdirSync(join(ROOT, 'dist'), { recursive: true });
  for (let i = 0; i < 600; i++) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // another test file is building: wait for it, then re-check
      execFileSync('sleep', ['0.1']);
      if (i > 0 && fresh()) return;
    }
  }
  try {
    if (!fresh()) execFileSync('npx', ['tsc', '-p', '.'], { cwd: ROOT, stdio: 'inherit' });
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** process.env without ARTIFACTAPI_* (the machine's settings must not leak into tests). */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ARTIFACTAPI_')) env[k] = v;
  return { ...env, NO_COLOR: '1', ...extra };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `artifactapi ARGS` to completion in `cwd` (a temp dir by default, so no ./artifactapi.toml is read). */
export function runCli(args: string[], o: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const cwd = o.cwd ?? scratchDir();
  // Commands aimed at a server spawnServe started carry its admin token, unless the test says otherwise.
  const at = args.indexOf('--url');
  const server = at >= 0 ? args[at + 1] : o.env?.ARTIFACTAPI_URL;
  const token = server !== undefined && o.env?.ARTIFACTAPI_TOKEN === undefined ? adminTokens.get(server.replace(/\/+$/, '')) : undefined;
  const env = token ? { ...o.env, ARTIFACTAPI_TOKEN: token } : o.env;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

const scratch: string[] = [];
/** A temp dir removed by cleanupScratch(). */
export function scratchDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'artifactapi-cli-'));
  scratch.push(d);
  return d;
}
export function cleanupScratch(): void {
  for (const d of scratch.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Admin API tokens of the servers spawnServe started, by URL (runCli sends them). */
const adminTokens = new Map<string, string>();

export interface ServeProcess {
  url: string;
  /** An admin API token (made through the API with the first-start admin password). */
  adminToken: string;
  port: number;
  dataDir: string;
  child: ChildProcess;
  /** Every stdout line so far (pino JSON). */
  lines: string[];
  /** Parsed JSON log lines so far. */
  logs(): Record<string, unknown>[];
  stderr(): string;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  /** SIGTERM (or the given signal) and wait for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Spawns `artifactapi serve` on 127.0.0.1, a free port, a fresh data dir; resolves once it listens. */
export async function spawnServe(args: string[] = [], o: { env?: Record<string, string>; dataDir?: string; cwd?: string } = {}): Promise<ServeProcess> {
  const dataDir = o.dataDir ?? join(scratchDir(), 'data');
  const child = spawn(process.execPath, [BIN, 'serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir, ...args], {
    cwd: o.cwd ?? scratchDir(),
    // Anonymous write (a trusted network), as before auth, unless the test sets auth itself.
    env: cleanEnv({ ARTIFACTAPI_AUTH_ANONYMOUS: 'write', ...o.env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let err = '';
  let buf = '';
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const listening = new Promise<string>((resolveAddr, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        try {
          const j = JSON.parse(line) as { msg?: string; address?: string };
          if (j.msg === 'artifactapi listening' && j.address) resolveAddr(j.address);
        } catch {
          // not JSON: kept in lines, the test decides
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    void exited.then((code) => reject(new Error(`serve exited with ${code} before listening: ${err.trim()}`)));
    setTimeout(() => reject(new Error(`serve did not listen within 30s: ${err.trim()}`)), 30_000).unref();
  });
  const address = await listening;
  const port = Number(new URL(address).port);
  const url = `http://127.0.0.1:${port}`;
  let adminToken = '';
  try {
    const password = readFileSync(join(dataDir, 'admin.password'), 'utf8').trim();
    const res = await fetch(`${url}/api/v1/tokens`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}` },
      body: JSON.stringify({ description: 'test suite' }),
    });
    if (res.status === 201) adminToken = ((await res.json()) as { token: string }).token;
  } catch {
    // a data dir whose admin password is gone: the test brings its own credentials
  }
  if (adminToken) adminTokens.set(url, adminToken);
  return {
    url,
    adminToken,
    port,
    dataDir,
    child,
    lines,
    logs: () => lines.flatMap((l) => { try { return [JSON.parse(l) as Record<string, unknown>]; } catch { return []; } }),
    stderr: () => err,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** A loopback port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((r) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => r(p));
    });
  });
}
