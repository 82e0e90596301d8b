import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { SUITE_TOKEN } from '../../helpers/server.js';

const run = promisify(execFile);

export const sha256hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');
export const md5hex = (b: Buffer) => createHash('md5').update(b).digest('hex');

export interface Dep {
  name: string;
  version_requirement?: string;
}

export const metadataOf = (name: string, version: string, dependencies: Dep[] = []) => ({
  name, version, author: name.split('-')[0], license: 'Apache-2.0', summary: `${name} module`, source: `https://example.org/${name}`, dependencies,
});

/**
 * A module release tarball as the Forge stores it (`puppet module build` is gone in Puppet 7):
 * `<name>-<version>/metadata.json` and a manifest, gzipped tar.
 */
export async function moduleTgz(metadata: Record<string, unknown> | string, o: { dir?: string; extra?: Record<string, string> } = {}): Promise<Buffer> {
  const meta = typeof metadata === 'string' ? metadata : JSON.stringify(metadata, null, 2);
  const m = typeof metadata === 'string' ? {} : metadata;
  const dir = o.dir ?? `${String(m.name)}-${String(m.version)}`;
  const short = String(m.name ?? 'x').split(/[-/]/)[1] ?? 'x';
  const pack = tar.pack();
  const files: Record<string, string> = {
    [`${dir}/metadata.json`]: meta,
    [`${dir}/manifests/init.pp`]: `class ${short} {}\n`,
    ...o.extra,
  };
  for (const [name, body] of Object.entries(files)) pack.entry({ name, mtime: new Date(0), mode: 0o644 }, body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

/** The publish request of the Forge tools (pdk release, puppet-blacksmith): multipart with one `file` field. */
export async function publish(repoUrl: string, tgz: Buffer, file = 'module.tar.gz'): Promise<Response> {
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(tgz)], { type: 'application/octet-stream' }), file);
  return fetch(`${repoUrl}/v3/releases`, { method: 'POST', body: form, headers: { authorization: `Bearer ${SUITE_TOKEN}` } });
}

export interface PuppetRun {
  code: number;
  out: string;
  /** module dir name -> its installed metadata.json */
  installed: Record<string, { name: string; version: string }>;
}

/** `puppet module install NAME --module_repository URL` into a fresh target dir (CLIENTS.md). */
export async function puppetInstall(repoUrl: string, mod: string, extra: string[] = []): Promise<PuppetRun> {
  const d = await mkdtemp(join(tmpdir(), 'puppet-install-'));
  try {
    const target = join(d, 'modules');
    let code = 0;
    let out = '';
    try {
      const r = await run('puppet', ['module', 'install', mod, '--module_repository', repoUrl, '--target-dir', target,
        '--confdir', join(d, 'conf'), '--vardir', join(d, 'var'), '--codedir', join(d, 'code'), ...extra], { timeout: 90_000 });
      out = r.stdout + r.stderr;
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      code = typeof e.code === 'number' ? e.code : 1;
      out = `${e.stdout ?? ''}${e.stderr ?? ''}`;
    }
    const installed: PuppetRun['installed'] = {};
    for (const dir of await readdir(target).catch(() => [] as string[])) {
      installed[dir] = JSON.parse(await readFile(join(target, dir, 'metadata.json'), 'utf8'));
    }
    return { code, out, installed };
  } finally {
    await rm(d, { recursive: true, force: true });
  }
}
