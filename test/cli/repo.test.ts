import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUpstream, staticFiles, type FakeUpstream } from '../helpers/upstream.js';
import { ROOT, cleanupScratch, closedPort, ensureDist, runCli, spawnServe, type CliResult, type ServeProcess } from './bin.js';

const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** Exit 0, nothing on stderr. */
const ok = (r: CliResult) => {
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout;
};
/** Non-zero exit, one `artifactapi: …` line on stderr, nothing on stdout. */
const fails = (r: CliResult) => {
  expect(r.code).not.toBe(0);
  expect(r.code).not.toBeNull();
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  // our errors say `artifactapi: …`; commander's own usage errors say `error: …`
  expect(lines[0]).toMatch(/^(artifactapi|error): /);
  return lines[0];
};

describe('artifactapi repo … against a spawned server', () => {
  let srv: ServeProcess;
  let up: FakeUpstream;
  const cli = (...args: string[]) => runCli([...args, '--url', srv.url]);

  beforeAll(async () => {
    ensureDist();
    up = await startUpstream((req, res) => {
      // the upstream wants the credentials given as userinfo in --upstream
      if (req.headers.authorization !== `Basic ${Buffer.from('alice:s3cr3t-pw').toString('base64')}`) {
        res.writeHead(401).end('no');
        return;
      }
      return staticFiles({ '/dl/tool.txt': 'tool v1\n', '/dl/tool.bin': 'tool binary\n' })(req, res);
    });
    srv = await spawnServe();
  });
  afterAll(async () => {
    await srv?.stop();
    await up?.close();
    cleanupScratch();
  });

  it('--version prints the package version', async () => {
    expect((await runCli(['--version'])).stdout.trim()).toBe(version);
    expect((await runCli(['--version'])).code).toBe(0);
  });

  it('repo add local, text and --json', async () => {
    expect(ok(await cli('repo', 'add', 'files', '--format', 'generic', '--kind', 'local')).trim()).toBe('created local generic repository "files"');
    const j = JSON.parse(ok(await cli('repo', 'add', 'files2', '--format', 'generic', '--kind', 'local', '--json')));
    expect(j).toMatchObject({ name: 'files2', format: 'generic', kind: 'local' });
  });

  it('repo add remote with user:pass@ in --upstream: credentials are used, never shown', async () => {
    const upstream = up.url.replace('http://', 'http://alice:s3cr3t-pw@') + '/dl/';
    const added = await cli('repo', 'add', 'mirror', '--format', 'generic', '--kind', 'remote', '--upstream', upstream, '--json');
    const created = JSON.parse(ok(added));
    expect(added.stdout).not.toContain('s3cr3t-pw');
    expect(created).toMatchObject({ name: 'mirror', kind: 'remote', upstream: `${up.url}/dl/`, options: { username: 'alice', password: '********' } });

    for (const args of [['repo', 'show', 'mirror'], ['repo', 'show', 'mirror', '--json'], ['repo', 'list'], ['repo', 'list', '--json']]) {
      const out = ok(await cli(...args));
      expect(out, args.join(' ')).not.toContain('s3cr3t-pw');
      expect(out, args.join(' ')).not.toContain('alice:');
    }
    const text = ok(await cli('repo', 'show', 'mirror'));
    expect(text).toMatch(/^name\s+mirror$/m);
    expect(text).toMatch(/^kind\s+remote$/m);
    expect(text).toMatch(new RegExp(`^upstream\\s+${up.url}/dl/$`, 'm'));
    expect(text).toContain('"password":"********"');
    const shown = JSON.parse(ok(await cli('repo', 'show', 'mirror', '--json')));
    expect(shown.options.password).toBe('********');
    expect(shown.upstream).toBe(`${up.url}/dl/`);

    // the stored credentials really go upstream
    const res = await fetch(`${srv.url}/mirror/tool.txt`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('tool v1\n');
  });

  it('repo add virtual with --member, in order', async () => {
    const out = ok(await cli('repo', 'add', 'all', '--format', 'generic', '--kind', 'virtual', '--member', 'files', '--member', 'mirror', '--default-local', 'files'));
    expect(out.trim()).toBe('created virtual generic repository "all"');
    const shown = JSON.parse(ok(await cli('repo', 'show', 'all', '--json')));
    expect(shown).toMatchObject({ name: 'all', kind: 'virtual', members: ['files', 'mirror'], options: { default_local: 'files' } });
    expect(ok(await cli('repo', 'show', 'all'))).toMatch(/^members\s+\["files","mirror"\]$/m);
  });

  it('repo update --set changes a key, keeps the others and the stored credentials; unknown keys are refused', async () => {
    const out = ok(await cli('repo', 'update', 'mirror', '--set', 'metadata_ttl=10m', '--set', 'mutable=**/*.txt'));
    expect(out.trim()).toBe('updated remote generic repository "mirror": metadata_ttl, mutable');
    const shown = JSON.parse(ok(await cli('repo', 'show', 'mirror', '--json')));
    expect(shown).toMatchObject({ kind: 'remote', upstream: `${up.url}/dl/`, options: { metadata_ttl: 600_000, mutable: ['**/*.txt'], username: 'alice', password: '********' } });
    // the stored password survived the update: the upstream still lets us in (a file not cached yet)
    const res = await fetch(`${srv.url}/mirror/tool.bin`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('tool binary\n');

    expect(fails(await cli('repo', 'update', 'mirror', '--set', 'colour=blue'))).toMatch(/^artifactapi: .*unknown key "colour"/);
    expect(fails(await cli('repo', 'update', 'mirror', '--set', 'metadata_ttl=soon'))).toMatch(/^artifactapi: .*metadata_ttl/);
    expect(fails(await cli('repo', 'update', 'mirror'))).toBe('artifactapi: nothing to update: give --set key=value');
    expect(fails(await cli('repo', 'update', 'ghost', '--set', 'metadata_ttl=1m'))).toBe('artifactapi: no repository named "ghost"');
    // the refused updates changed nothing
    expect(JSON.parse(ok(await cli('repo', 'show', 'mirror', '--json'))).options.metadata_ttl).toBe(600_000);
  });

  it('repo list, text (a table) and --json', async () => {
    const table = ok(await cli('repo', 'list')).trimEnd().split('\n');
    expect(table[0]).toMatch(/^NAME\s+FORMAT\s+KIND\s+UPSTREAM\s+MEMBERS$/);
    const rows = Object.fromEntries(table.slice(1).map((l) => [l.split(/\s+/)[0], l]));
    expect(Object.keys(rows).sort()).toEqual(['all', 'files', 'files2', 'mirror']);
    expect(rows.all).toMatch(/^all\s+generic\s+virtual\s+files,mirror$/);
    expect(rows.mirror).toMatch(new RegExp(`^mirror\\s+generic\\s+remote\\s+${up.url}/dl/$`));
    const list = JSON.parse(ok(await cli('repo', 'list', '--json'))) as { name: string }[];
    expect(list.map((r) => r.name).sort()).toEqual(['all', 'files', 'files2', 'mirror']);
  });

  it('repo remove, text and --json; then show fails', async () => {
    expect(ok(await cli('repo', 'remove', 'files2')).trim()).toBe('removed repository "files2"');
    ok(await cli('repo', 'add', 'tmp', '--format', 'generic', '--kind', 'local'));
    expect(JSON.parse(ok(await cli('repo', 'remove', 'tmp', '--json')))).toEqual({ removed: 'tmp' });
    expect(fails(await cli('repo', 'show', 'files2'))).toBe('artifactapi: no repository named "files2"');
    expect(fails(await cli('repo', 'show', 'tmp', '--json'))).toBe('artifactapi: no repository named "tmp"');
    expect(fails(await cli('repo', 'remove', 'files2'))).toBe('artifactapi: no repository named "files2"');
  });

  it('errors are one stderr line and a non-zero exit', async () => {
    expect(fails(await cli('repo', 'add', 'files', '--format', 'generic', '--kind', 'local'))).toBe('artifactapi: repository "files" already exists');
    expect(fails(await cli('repo', 'add', 'x', '--format', 'maven', '--kind', 'local'))).toMatch(/^artifactapi: unknown format "maven" \(one of: generic, docker/);
    expect(fails(await cli('repo', 'add', 'api', '--format', 'generic', '--kind', 'local'))).toBe('artifactapi: "api" is a reserved name');
    expect(fails(await cli('repo', 'add', 'Bad_Name', '--format', 'generic', '--kind', 'local'))).toMatch(/^artifactapi: invalid repo name "Bad_Name"/);
    expect(fails(await cli('repo', 'add', 'y', '--format', 'generic', '--kind', 'proxy'))).toBe('artifactapi: kind must be local, remote or virtual');
    expect(fails(await cli('repo', 'add', 'v', '--format', 'generic', '--kind', 'virtual', '--member', 'ghost'))).toMatch(/^artifactapi: member "ghost" does not exist/);
    expect(fails(await cli('repo', 'add', 'z', '--kind', 'local'))).toMatch(/--format/); // commander: missing required option
    expect(fails(await runCli(['repo', 'frobnicate']))).toMatch(/unknown command/);
    // the failed adds left nothing behind
    const names = (JSON.parse(ok(await cli('repo', 'list', '--json'))) as { name: string }[]).map((r) => r.name).sort();
    expect(names).toEqual(['all', 'files', 'mirror']);
  });

  it('an unreachable server is one line naming the URL, for every repo command; ARTIFACTAPI_URL is honoured', async () => {
    const port = await closedPort();
    for (const args of [['repo', 'list'], ['repo', 'show', 'files'], ['repo', 'remove', 'files', '--json'], ['repo', 'add', 'n', '--format', 'generic', '--kind', 'local']]) {
      const line = fails(await runCli([...args, '--url', `http://127.0.0.1:${port}`]));
      expect(line).toBe(`artifactapi: cannot reach http://127.0.0.1:${port} (ECONNREFUSED); is \`artifactapi serve\` running? (--url or ARTIFACTAPI_URL)`);
    }
    const viaEnv = await runCli(['repo', 'list', '--json'], { env: { ARTIFACTAPI_URL: srv.url } });
    expect(JSON.parse(ok(viaEnv)).length).toBe(3);
  });
});
