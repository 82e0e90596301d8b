import { execFile, execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UpstreamHandler } from '../../helpers/upstream.js';
import { makeZip } from '../../helpers/zip.js';

/** Test-side module tooling: zips as golang.org/x/mod/zip writes them, h1: hashes, a GOPROXY upstream and a checksum database. */

export const escapePath = (p: string) => p.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
export const unescapePath = (p: string) => p.replace(/!([a-z])/g, (_, c: string) => c.toUpperCase());
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest();

export interface ZipFileSpec {
  name: string;
  body: Buffer | string;
  /** Unix mode written into the external attributes (default: none, as zips made elsewhere than Unix). */
  mode?: number;
}

/** A zip archive of the given entries (test/helpers/zip.ts), with unix modes where given. */
export function zipOf(entries: ZipFileSpec[]): Buffer {
  const modes = Object.fromEntries(entries.filter((e) => e.mode !== undefined).map((e) => [e.name, e.mode!]));
  return makeZip(Object.fromEntries(entries.map((e) => [e.name, e.body])), { modes });
}

/** dirhash.Hash1 over (name, content) pairs: go's `h1:`. */
export function h1(files: { name: string; body: Buffer | string }[]): string {
  const lines = [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((f) => `${sha256(f.body).toString('hex')}  ${f.name}\n`).join('');
  return `h1:${sha256(lines).toString('base64')}`;
}

/** One module version, with everything a GOPROXY serves for it. */
export interface ModVersion {
  path: string;
  version: string;
  goMod: string;
  files: Record<string, string>;
  zip: Buffer;
  zipHash: string;
  modHash: string;
  info: string;
  time: string;
}

/** A module version: go.mod (with `require`s) plus Go files, zipped under `path@version/`. */
export function modVersion(path: string, version: string, files: Record<string, string>, requires: Record<string, string> = {}, time = '2024-01-02T03:04:05Z'): ModVersion {
  const req = Object.entries(requires).map(([p, v]) => `require ${p} ${v}\n`).join('');
  const goMod = `module ${path}\n\ngo 1.19\n${req ? `\n${req}` : ''}`;
  const all = { 'go.mod': goMod, ...files };
  const entries = Object.entries(all).map(([name, body]) => ({ name: `${path}@${version}/${name}`, body }));
  return {
    path, version, goMod, files, time,
    zip: zipOf(entries),
    zipHash: h1(entries),
    modHash: h1([{ name: 'go.mod', body: goMod }]),
    info: JSON.stringify({ Version: version, Time: time }),
  };
}

/**
 * A chain of modules for `go build`: example.com/app -> example.com/hello -> example.com/greet
 * -> example.com/Upper (case-encoded as !upper). Two greet versions, so MVS picks one.
 */
export function chain(): { mods: ModVersion[]; app: { goMod: string; main: string }; output: string } {
  const upper = modVersion('example.com/Upper', 'v1.0.0', { 'upper.go': 'package upper\n\nfunc Word() string { return "Hello" }\n' });
  const greet0 = modVersion('example.com/greet', 'v1.0.0', { 'greet.go': 'package greet\n\nfunc Greeting() string { return "hi" }\n' });
  const greet1 = modVersion('example.com/greet', 'v1.1.0', {
    'greet.go': 'package greet\n\nimport "example.com/Upper"\n\nfunc Greeting() string { return upper.Word() }\n',
  }, { 'example.com/Upper': 'v1.0.0' });
  const hello = modVersion('example.com/hello', 'v1.0.0', {
    'hello.go': 'package hello\n\nimport "example.com/greet"\n\nfunc Hello() string { return greet.Greeting() + ", world" }\n',
  }, { 'example.com/greet': 'v1.1.0' });
  return {
    mods: [upper, greet0, greet1, hello],
    app: {
      goMod: 'module example.com/app\n\ngo 1.19\n\nrequire example.com/hello v1.0.0\n',
      main: 'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/hello"\n)\n\nfunc main() { fmt.Println(hello.Hello()) }\n',
    },
    output: 'Hello, world\n',
  };
}

function send(res: Parameters<UpstreamHandler>[1], status: number, body: Buffer | string, type = 'text/plain; charset=utf-8') {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
  res.writeHead(status, { 'content-type': type, 'content-length': String(buf.length) }).end(buf);
}

/** A GOPROXY serving `mods` (and `sumdb`, under sumdb/<name>/, when given); 404 for anything else, 410 for `gone` modules. */
export function goProxyHandler(mods: ModVersion[], o: { sumdb?: TestSumdb; gone?: string[]; override?: Record<string, Buffer> } = {}): UpstreamHandler {
  return (req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]).replace(/^\/+/, '');
    if (o.override?.[path]) return send(res, 200, o.override[path], 'application/octet-stream');
    if (o.sumdb && path.startsWith(`sumdb/${o.sumdb.name}/`)) {
      const body = o.sumdb.serve(path.slice(`sumdb/${o.sumdb.name}/`.length));
      return body === null ? send(res, 404, 'not found') : send(res, 200, body);
    }
    const m = /^(.+)\/(@latest|@v\/list|@v\/(.+)\.(info|mod|zip))$/.exec(path);
    if (!m) return send(res, 404, 'not found');
    const modPath = unescapePath(m[1]);
    if (o.gone?.includes(modPath)) return send(res, 410, 'gone');
    const versions = mods.filter((x) => x.path === modPath);
    if (versions.length === 0) return send(res, 404, `not found: ${modPath}`);
    if (m[2] === '@v/list') return send(res, 200, versions.map((v) => `${v.version}\n`).join(''));
    if (m[2] === '@latest') return send(res, 200, versions.at(-1)!.info, 'application/json');
    const v = versions.find((x) => x.version === m[3]);
    if (!v) return send(res, 404, `not found: ${modPath}@${m[3]}`);
    if (m[4] === 'info') return send(res, 200, v.info, 'application/json');
    if (m[4] === 'mod') return send(res, 200, v.goMod);
    return send(res, 200, v.zip, 'application/zip');
  };
}

/**
 * A checksum database as golang.org/x/mod/sumdb serves it: records `path version h1:…` and
 * `path version/go.mod h1:…` in a transparent log (RFC 6962 hashes), the tree head as a note
 * signed with an ed25519 key, lookups, and hash tiles of height 8 (this log stays under 256 records,
 * so its tiles are the partial level-0 tile).
 */
export interface TestSumdb {
  name: string;
  /** GOSUMDB value: `<name>+<hash>+<key>`. */
  verifierKey: string;
  /** The sumdb response for a path under sumdb/<name>/, or null (404). */
  serve(rest: string): Buffer | null;
}

export function testSumdb(name: string, mods: ModVersion[]): TestSumdb {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const key = Buffer.concat([Buffer.from([1]), raw]);
  const keyHash = sha256(Buffer.concat([Buffer.from(`${name}\n`), key])).subarray(0, 4);
  const verifierKey = `${name}+${keyHash.toString('hex')}+${key.toString('base64')}`;
  const records = mods.map((m) => Buffer.from(`${m.path} ${m.version} ${m.zipHash}\n${m.path} ${m.version}/go.mod ${m.modHash}\n`));
  if (records.length >= 256) throw new Error('testSumdb keeps under 256 records');
  const leaves = records.map((r) => sha256(Buffer.concat([Buffer.from([0]), r])));
  const root = treeHash(leaves);
  const text = `go.sum database tree\n${records.length}\n${root.toString('base64')}\n`;
  const signed = signNote(text, name, keyHash, privateKey);
  const tilePath = `tile/8/0/000.p/${records.length}`;
  return {
    name, verifierKey,
    serve(rest) {
      if (rest === 'supported') return Buffer.alloc(0);
      if (rest === 'latest') return Buffer.from(signed);
      if (rest === tilePath) return Buffer.concat(leaves);
      const lookup = /^lookup\/(.+)@([^@]+)$/.exec(rest);
      if (lookup) {
        const id = mods.findIndex((m) => m.path === unescapePath(lookup[1]) && m.version === lookup[2]);
        if (id < 0) return null;
        return Buffer.concat([Buffer.from(`${id}\n`), records[id], Buffer.from('\n'), Buffer.from(signed)]);
      }
      return null;
    },
  };
}

function treeHash(hashes: Buffer[]): Buffer {
  if (hashes.length === 1) return hashes[0];
  let k = 1;
  while (k * 2 < hashes.length) k *= 2;
  return sha256(Buffer.concat([Buffer.from([1]), treeHash(hashes.slice(0, k)), treeHash(hashes.slice(k))]));
}

function signNote(text: string, name: string, keyHash: Buffer, privateKey: KeyObject): string {
  const sig = sign(null, Buffer.from(text), privateKey);
  return `${text}\n\u2014 ${name} ${Buffer.concat([keyHash, sig]).toString('base64')}\n`;
}

/** A scratch Go workspace: its own GOPATH, module cache and build cache. */
export interface GoEnv {
  dir: string;
  env: NodeJS.ProcessEnv;
  go(args: string[], cwd?: string): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Writes the app module (go.mod + main.go) into `<dir>/app`, returns its path. */
  writeApp(app: { goMod: string; main: string }): Promise<string>;
  close(): Promise<void>;
}

export async function goEnv(proxy: string, extra: NodeJS.ProcessEnv = {}): Promise<GoEnv> {
  const dir = await mkdtemp(join(tmpdir(), 'artifactapi-go-'));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH, HOME: dir, GOPROXY: proxy, GOFLAGS: '-mod=mod -modcacherw', GOSUMDB: 'off', GONOSUMDB: '*',
    GOPATH: join(dir, 'gopath'), GOMODCACHE: join(dir, 'mod'), GOCACHE: join(dir, 'cache'), GOTOOLCHAIN: 'local',
    GOENV: 'off', GO111MODULE: 'on', CGO_ENABLED: '0', GONOPROXY: '', GOPRIVATE: '', GOINSECURE: '', ...extra,
  };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  return {
    dir, env,
    go: (args, cwd = dir) => new Promise((resolve) => {
      execFile('go', args, { cwd, env, timeout: 180_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
    }),
    async writeApp(app) {
      const at = join(dir, 'app');
      await mkdir(at, { recursive: true });
      await writeFile(join(at, 'go.mod'), app.goMod);
      await writeFile(join(at, 'main.go'), app.main);
      return at;
    },
    close: () => rm(dir, { recursive: true, force: true }),
  };
}

/** What `go mod download`, `go build` and the built program did: codes, error lines (not "go: downloading"), the program's output. */
export interface BuildOutcome {
  download: { code: number; stderr: string };
  build: { code: number; errors: string[] };
  output: string;
}

/** Writes the app, runs `go mod download` and `go build` in it, then the binary (when it was built). */
export async function downloadAndBuild(go: GoEnv, app: { goMod: string; main: string }): Promise<BuildOutcome & { dir: string }> {
  const dir = await go.writeApp(app);
  const dl = await go.go(['mod', 'download'], dir);
  // go mod download fetches what go.mod names; the build fetches the zips of the rest of the chain.
  const build = await go.go(['build', '-o', 'app', '.'], dir);
  const output = build.code === 0 ? execFileSync(join(dir, 'app')).toString() : '';
  return {
    dir, output,
    download: { code: dl.code, stderr: dl.stderr },
    build: { code: build.code, errors: build.stderr.split('\n').filter((l) => l && !l.startsWith('go: downloading ')) },
  };
}
