import { execa } from 'execa';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { which } from '../../helpers/which.js';
import { SUITE_TOKEN } from '../../helpers/server.js';

export { which };

export const HAVE_NPM = which('npm');

/** A scratch area for npm runs: its own userconfig and a fresh cache per run, removed by cleanup(). */
export class NpmScratch {
  private constructor(readonly root: string) {}
  private runs = 0;

  static async create(): Promise<NpmScratch> {
    return new NpmScratch(await mkdtemp(join(tmpdir(), 'npm-test-')));
  }

  /** Writes a package (package.json + index.js) under root/src/<dir>. */
  async makePackage(pkg: { name: string; version: string; dependencies?: Record<string, string>; [k: string]: unknown }, dir = `${pkg.name.replace('/', '+')}-${pkg.version}`): Promise<string> {
    const d = join(this.root, 'src', dir);
    await mkdir(d, { recursive: true });
    await writeFile(join(d, 'package.json'), JSON.stringify({ main: 'index.js', license: 'MIT', ...pkg }, null, 2));
    await writeFile(join(d, 'index.js'), `module.exports = ${JSON.stringify(`${pkg.name}@${pkg.version}`)};\n`);
    return d;
  }

  /** `npm pack` of a package dir: the tarball's bytes and file name. */
  async pack(dir: string): Promise<{ file: string; data: Buffer }> {
    const out = join(this.root, 'packed');
    await mkdir(out, { recursive: true });
    const r = await this.npm(['pack', '--pack-destination', out, '--json'], { cwd: dir, registry: 'http://127.0.0.1:9/' });
    const file = JSON.parse(r.stdout)[0].filename as string;
    return { file, data: await readFile(join(out, file)) };
  }

  /** An empty project dir to install into. */
  async project(name = 'consumer'): Promise<string> {
    const d = join(this.root, 'projects', `${name}-${++this.runs}`);
    await mkdir(d, { recursive: true });
    await writeFile(join(d, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }));
    return d;
  }

  /**
   * Runs the real npm client against `registry` with its own userconfig (an
   * _authToken for the registry URL, so publish works) and a fresh cache.
   */
  async npm(args: string[], o: { cwd: string; registry: string; reject?: boolean; tokenInConfig?: boolean }) {
    const n = ++this.runs;
    const userconfig = join(this.root, `npmrc-${n}`);
    const cache = join(this.root, `cache-${n}`);
    const hostPath = o.registry.replace(/^https?:/, '');
    await writeFile(userconfig, [
      `registry=${o.registry}`,
      ...(o.tokenInConfig === false ? [] : [`${hostPath.endsWith('/') ? hostPath : `${hostPath}/`}:_authToken=${SUITE_TOKEN}`]),
      'audit=false', 'fund=false', 'update-notifier=false', 'progress=false',
    ].join('\n') + '\n');
    return execa('npm', [...args, '--userconfig', userconfig, '--cache', cache, '--registry', o.registry, '--no-audit', '--no-fund', '--loglevel=warn'], {
      cwd: o.cwd, reject: o.reject ?? true, env: { npm_config_globalconfig: join(this.root, 'no-global-npmrc') }, extendEnv: true, timeout: 120_000,
    });
  }

  async cleanup(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }
}
