import { execFileSync } from 'node:child_process';

/** True when `bin` is on PATH: tests that need a real client skip only when it is absent. */
export function which(bin: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
