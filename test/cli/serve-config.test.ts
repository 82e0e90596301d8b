import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, cleanupScratch, ensureDist, runCli, scratchDir, spawnServe } from './bin.js';

/** `serve` must fail fast here; if it started listening, the test would time out instead. */
const serveFails = (args: string[], o: { env?: Record<string, string>; cwd?: string } = {}) =>
  runCli(['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', join(scratchDir(), 'data'), ...args], { ...o, timeoutMs: 20_000 });

describe('artifactapi serve with a bad config', () => {
  beforeAll(() => ensureDist());
  afterAll(() => cleanupScratch());

  const oneLine = (r: { code: number | null; stdout: string; stderr: string }, expected: string) => {
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull(); // exited by itself, not killed by the timeout
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`artifactapi: ${expected}\n`);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  };

  it('an unknown key: one stderr line naming the dotted key and the file', async () => {
    const dir = scratchDir();
    const file = join(dir, 'bad.toml');
    writeFileSync(file, '[server]\nprot = 8080\n');
    oneLine(await serveFails(['--config', file]), `${file}: unknown key "server.prot"`);
  });

  it('a bad value in a [[repos]] entry names repos[i].key and the file', async () => {
    const file = join(scratchDir(), 'repos.toml');
    writeFileSync(file, '[[repos]]\nname = "x"\nformat = "generic"\nkind = "remote"\nupstream = "http://127.0.0.1:9/"\nmetadata_ttl = "soon"\n');
    oneLine(await serveFails(['--config', file]), `${file}: repos[0].metadata_ttl: expected a duration like "30s", got "soon"`);
  });

  it('a [[repos]] entry the registry refuses at start (unknown member) names the entry and the file', async () => {
    const file = join(scratchDir(), 'members.toml');
    writeFileSync(file, '[[repos]]\nname = "all"\nformat = "generic"\nkind = "virtual"\nmembers = ["ghost"]\n');
    oneLine(await serveFails(['--config', file]), `${file}: repos[0] ("all"): member "ghost" does not exist`);
  });

  it('broken TOML: one line with the file and the position', async () => {
    const file = join(scratchDir(), 'broken.toml');
    writeFileSync(file, 'public_url = "http://x\n');
    const r = await serveFails(['--config', file]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`^artifactapi: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: invalid TOML at line 1`));
  });

  it('./artifactapi.toml is read when --config is absent, and ARTIFACTAPI_CONFIG points elsewhere', async () => {
    const cwd = scratchDir();
    writeFileSync(join(cwd, 'artifactapi.toml'), '[gc]\ngrace = "whenever"\n');
    oneLine(await serveFails([], { cwd }), 'artifactapi.toml: gc.grace: expected a duration like "30s", got "whenever"');
    const other = join(scratchDir(), 'other.toml');
    writeFileSync(other, 'colour = "blue"\n');
    oneLine(await serveFails([], { cwd, env: { ARTIFACTAPI_CONFIG: other } }), `${other}: unknown key "colour"`);
  });

  it('a missing --config file, a bad env value and a bad flag', async () => {
    const missing = join(scratchDir(), 'nope.toml');
    oneLine(await serveFails(['--config', missing]), `${missing}: cannot read config file (ENOENT)`);
    oneLine(await serveFails([], { env: { ARTIFACTAPI_SERVER_VERIFY_ON_READ: 'maybe' } }), 'environment ARTIFACTAPI_SERVER_VERIFY_ON_READ: server.verify_on_read: expected true or false, got "maybe"');
    const r = await runCli(['serve', '--port', 'eighty', '--data-dir', join(scratchDir(), 'd')], { timeoutMs: 20_000 });
    oneLine(r, 'command line: server.port: expected a number, got "eighty"');
  });

  it('the example config starts a server whose declared repos are there, password masked', async () => {
    const srv = await spawnServe(['--config', join(ROOT, 'artifactapi.example.toml')]);
    try {
      const list = await runCli(['repo', 'list', '--json', '--url', srv.url]);
      expect(list.code, list.stderr).toBe(0);
      expect((JSON.parse(list.stdout) as { name: string }[]).map((r) => r.name).sort()).toEqual(['alpine-local', 'el9-local', 'hub-remote', 'releases', 'releases-local', 'releases-remote', 'vendor-remote']);
      const show = await runCli(['repo', 'show', 'vendor-remote', '--url', srv.url]);
      expect(show.code, show.stderr).toBe(0);
      expect(show.stdout).not.toContain('change-me');
      expect(show.stdout).toContain('********');
    } finally {
      expect(await srv.stop()).toBe(0);
    }
  });
});
