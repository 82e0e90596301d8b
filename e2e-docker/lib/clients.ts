import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Real package clients, used only when their binary is on this machine (tests skip otherwise). */
export function which(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

/** Runs a client; throws with its output when it fails. */
export function run(cmd: string, args: string[], o: { cwd?: string; env?: Record<string, string | undefined> } = {}): string {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...o.env })) if (v !== undefined) env[k] = v;
  try {
    return execFileSync(cmd, args, { cwd: o.cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 50_000 });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

/** A temp dir for one client run, removed by the returned function. */
export function scratch(prefix: string): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `e2e-${prefix}-`));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

export const tmpPath = (dir: string, ...p: string[]) => join(dir, ...p);
