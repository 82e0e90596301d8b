import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const FIXTURES = resolve(import.meta.dirname, '../../../fixtures/pypi');

import { which } from '../../helpers/which.js';
import { SUITE_TOKEN } from '../../helpers/server.js';

export { which };

/** Debian's python has pip and setuptools; fall back to the python3 on PATH. */
export const PYTHON = (() => {
  for (const p of ['/usr/bin/python3', 'python3']) {
    try {
      execFileSync(p, ['-m', 'pip', '--version'], { stdio: 'ignore' });
      return p;
    } catch {
      /* next */
    }
  }
  return null;
})();

/**
 * A python whose pip reads PEP 714 `core-metadata` from JSON pages (pip >= 23.2), so
 * it resolves from `.metadata` files instead of downloading wheels; Debian's pip 23.0 does not.
 */
export const PYTHON_PEP714 = (() => {
  for (const p of ['python3', '/usr/bin/python3']) {
    try {
      const v = execFileSync(p, ['-m', 'pip', '--version'], { encoding: 'utf8' });
      const m = /^pip (\d+)\.(\d+)/.exec(v);
      if (m && (Number(m[1]) > 23 || (Number(m[1]) === 23 && Number(m[2]) >= 2))) return p;
    } catch {
      /* next */
    }
  }
  return null;
})();

/** pip without this machine's pip.conf, find-links or extra indexes: only the index we name. */
export function pipEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PIP_CONFIG_FILE: '/dev/null', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1' };
  for (const k of Object.keys(env)) if (/^PIP_(FIND_LINKS|INDEX_URL|EXTRA_INDEX_URL|NO_INDEX)$/.test(k)) delete env[k];
  return env;
}

export interface Dist {
  path: string;
  filename: string;
  bytes: Buffer;
  sha256: string;
}

async function dist(path: string): Promise<Dist> {
  const bytes = await readFile(path);
  return { path, filename: path.split('/').pop()!, bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/**
 * Builds a wheel (and optionally an sdist) from a tiny source package under
 * fixtures/pypi, copied to a temp dir first (setuptools writes into the tree);
 * `version` rewrites the pyproject version, `files` overwrites source files (a variant with other bytes).
 */
export async function buildDist(fixture: string, o: { version?: string; sdist?: boolean; files?: Record<string, string> } = {}): Promise<{ wheel: Dist; sdist?: Dist }> {
  if (!PYTHON) throw new Error('no python with pip');
  const work = await mkdtemp(join(tmpdir(), 'pypi-build-'));
  const src = join(work, 'src');
  await cp(join(FIXTURES, fixture), src, { recursive: true });
  if (o.version) {
    const p = join(src, 'pyproject.toml');
    await writeFile(p, (await readFile(p, 'utf8')).replace(/^version = ".*"$/m, `version = "${o.version}"`));
  }
  for (const [rel, text] of Object.entries(o.files ?? {})) await writeFile(join(src, rel), text);
  const out = join(work, 'out');
  await mkdir(out);
  await run(PYTHON, ['-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--no-index', '-w', out, src], { env: pipEnv() });
  const wheelName = (await readdir(out)).find((f) => f.endsWith('.whl'))!;
  const wheel = await dist(join(out, wheelName));
  if (!o.sdist) return { wheel };
  const sdOut = join(work, 'sdist');
  await mkdir(sdOut);
  await run(PYTHON, ['-c', `from setuptools import build_meta as b; b.build_sdist(${JSON.stringify(sdOut)})`], { cwd: src, env: pipEnv() });
  const sdName = (await readdir(sdOut)).find((f) => f.endsWith('.tar.gz'))!;
  return { wheel, sdist: await dist(join(sdOut, sdName)) };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function runAllowFail(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<RunResult> {
  try {
    const r = await run(cmd, args, { env, cwd, maxBuffer: 16 * 1024 * 1024, timeout: 120_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** `pip install --index-url URL --target DIR --no-cache-dir`, isolated; returns the target dir and the run. */
export async function pipInstall(indexUrl: string, reqs: string[], extra: string[] = [], python = PYTHON!): Promise<RunResult & { target: string }> {
  const target = await mkdtemp(join(tmpdir(), 'pypi-target-'));
  const r = await runAllowFail(python, [
    '-m', 'pip', '--isolated', 'install', '--no-cache-dir', '--disable-pip-version-check', '--index-url', indexUrl,
    '--target', target, ...extra, ...reqs,
  ], pipEnv());
  return { ...r, target };
}

/** Imports a module from a pip --target dir and prints an expression. */
export async function pyEval(target: string, code: string): Promise<string> {
  const r = await run(PYTHON!, ['-c', code], { env: { ...pipEnv(), PYTHONPATH: target } });
  return r.stdout.trim();
}

/** twine upload with `-u`/`-p` (default `__token__` and the suites' admin token, which every test server knows). */
export async function twineUpload(repoUrl: string, files: string[], creds: { user: string; password: string } = { user: '__token__', password: SUITE_TOKEN }): Promise<RunResult> {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('TWINE_')) delete env[k];
  return runAllowFail('twine', ['upload', '--repository-url', repoUrl, '-u', creds.user, '-p', creds.password, '--non-interactive', '--disable-progress-bar', ...files], env);
}

/** A twine-shaped multipart upload built by hand (fields first, then `content`), for the refusal paths. */
export function uploadForm(file: { filename: string; bytes: Buffer }, fields: Record<string, string>): { body: Buffer; contentType: string } {
  const boundary = `----pypitest${Math.random().toString(16).slice(2)}`;
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  }
  parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="content"; filename="${file.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`));
  parts.push(file.bytes, Buffer.from(`\r\n--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** The METADATA file inside a wheel, read with Python's zipfile (independent of the server's reader). */
export async function wheelMetadata(wheelPath: string): Promise<Buffer> {
  const r = await run(PYTHON!, ['-c', [
    'import sys, zipfile',
    'z = zipfile.ZipFile(sys.argv[1])',
    "n = [x for x in z.namelist() if x.endswith('.dist-info/METADATA') and x.count('/') == 1][0]",
    'sys.stdout.buffer.write(z.read(n))',
  ].join('\n'), wheelPath], { encoding: 'buffer' });
  return r.stdout as unknown as Buffer;
}
