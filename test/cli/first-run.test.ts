import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupScratch, ensureDist, runCli, scratchDir, spawnServe, type ServeProcess } from './bin.js';

/** A newcomer: `npm start` in a checkout (data in ./data), then the CLI from the same directory, no token set. */
describe('first run on the server host, no token', () => {
  let srv: ServeProcess;
  let home: string;
  const noToken = { ARTIFACTAPI_TOKEN: '' };

  beforeAll(async () => {
    ensureDist();
    home = scratchDir();
    srv = await spawnServe([], { dataDir: join(home, 'data'), cwd: home });
  });
  afterAll(async () => {
    await srv.stop();
    cleanupScratch();
  });

  it('repo add and push-local work with the first-start admin password from ./data', async () => {
    const add = await runCli(['repo', 'add', 'smoke', '--format', 'generic', '--kind', 'local', '--url', srv.url], { cwd: home, env: noToken });
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    const file = join(home, 'hello.txt');
    writeFileSync(file, 'hello\n');
    const push = await runCli(['push-local', 'smoke', file, '--url', srv.url, '--json'], { cwd: home, env: noToken });
    expect(push.code).toBe(0);
    expect((await fetch(`${srv.url}/smoke/hello.txt`)).status).toBe(200); // anonymous read, as shipped
    expect(await (await fetch(`${srv.url}/smoke/hello.txt`)).text()).toBe('hello\n');
  });

  it('elsewhere (no readable admin.password) it says how to authenticate', async () => {
    const away = scratchDir();
    mkdirSync(join(away, 'data'));
    const r = await runCli(['repo', 'add', 'nope', '--format', 'generic', '--kind', 'local', '--url', srv.url], { cwd: away, env: noToken });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toBe("artifactapi: authentication required (give an API token: --token or ARTIFACTAPI_TOKEN; on the server's host, run it where the data dir's admin.password is readable, e.g. next to ./data)\n");
  });
});
