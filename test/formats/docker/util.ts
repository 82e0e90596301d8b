import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

export function which(bin: string): boolean {
  return ['/usr/bin', '/usr/local/bin', '/bin', '/usr/sbin'].some((d) => existsSync(`${d}/${bin}`));
}

export async function skopeo(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run('skopeo', args, { maxBuffer: 64 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`skopeo ${args.join(' ')}: ${e.stderr || e.message}`);
  }
}

export const TLS = ['--src-tls-verify=false', '--dest-tls-verify=false'];
