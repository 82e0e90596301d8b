import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { startUpstream, type FakeUpstream } from '../../helpers/upstream.js';

/**
 * Repo options are validated by the repo's format (the core keys plus the format's own), through
 * the management API as through the config file; secrets are masked wherever a repo is shown and
 * never reach the log.
 */
describe('repository options by format, and secrets, through the API', () => {
  let srv: TestServer;
  let up: FakeUpstream;
  let dir: string;
  const logLines: string[] = [];
  const seen: (string | undefined)[] = [];
  const ENV_PW = 'ARTIFACTAPI_TEST_KIT_PASSWORD';

  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${srv.url}/api/v1/repositories${path}`, {
      method, headers: { authorization: srv.adminAuth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, json: text ? JSON.parse(text) : undefined };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'artifactapi-kit-'));
    process.env[ENV_PW] = 'pw-from-env';
    up = await startUpstream((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`file ${req.url}\n`);
    });
    srv = await startServer({ 'server.log_level': 'debug' }, { logLines });
  });
  afterAll(async () => {
    delete process.env[ENV_PW];
    await srv?.close();
    await up?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a key of another format is refused with a 400 that names the key and whose it is', async () => {
    const r = await api('POST', '', { name: 'g1', format: 'generic', kind: 'local', gpg_key_file: '/k.asc' });
    expect(r.status).toBe(400);
    expect(r.json).toEqual({ error: { code: 'BAD_REQUEST', message: 'repository: unknown key "gpg_key_file" (a key of rpm repos, not generic)' } });
    const s = await api('POST', '', { name: 'g1', format: 'generic', kind: 'local', colour: 'blue' });
    expect(s.status).toBe(400);
    expect(s.json).toEqual({ error: { code: 'BAD_REQUEST', message: 'repository: unknown key "colour"' } });
    expect((await api('GET', '/g1')).status).toBe(404);
  });

  it('docker_hub is a docker option: settable (and coerced) on a docker repo, nowhere else', async () => {
    const r = await api('POST', '', { name: 'hub', format: 'docker', kind: 'remote', upstream: `${up.url}/`, docker_hub: 'true' });
    expect(r.status).toBe(201);
    expect(r.json.options).toEqual({ docker_hub: true });
    const g = await api('POST', '', { name: 'g2', format: 'generic', kind: 'remote', upstream: `${up.url}/`, docker_hub: true });
    expect(g.json).toEqual({ error: { code: 'BAD_REQUEST', message: 'repository: unknown key "docker_hub" (a key of docker repos, not generic)' } });
  });

  it('password_file: the upstream gets the file\'s contents (newline trimmed); show prints the path, never the password', async () => {
    const f = join(dir, 'pw');
    writeFileSync(f, 'pw-from-file\n');
    expect((await api('POST', '', { name: 'viafile', format: 'generic', kind: 'remote', upstream: `${up.url}/a/`, username: 'u', password_file: f })).status).toBe(201);
    seen.length = 0;
    const res = await fetch(`${srv.url}/viafile/one.txt`);
    expect(res.status).toBe(200);
    expect(seen).toEqual([`Basic ${Buffer.from('u:pw-from-file').toString('base64')}`]);
    expect((await api('GET', '/viafile')).json.options).toEqual({ username: 'u', password_file: f });
  });

  it('password_env: the upstream gets the variable; it wins over a stored password', async () => {
    expect((await api('POST', '', { name: 'viaenv', format: 'generic', kind: 'remote', upstream: `${up.url}/b/`, username: 'u', password: 'stored-pw', password_env: ENV_PW })).status).toBe(201);
    seen.length = 0;
    expect((await fetch(`${srv.url}/viaenv/two.txt`)).status).toBe(200);
    expect(seen).toEqual([`Basic ${Buffer.from('u:pw-from-env').toString('base64')}`]);
    expect((await api('GET', '/viaenv')).json.options).toEqual({ username: 'u', password: '********', password_env: ENV_PW });
  });

  it('a password_file that is missing: 500 naming the repo, the key and the file; nothing sent upstream', async () => {
    const missing = join(dir, 'absent');
    expect((await api('POST', '', { name: 'nofile', format: 'generic', kind: 'remote', upstream: `${up.url}/c/`, username: 'u', password_file: missing })).status).toBe(201);
    seen.length = 0;
    const res = await fetch(`${srv.url}/nofile/three.txt`);
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: { code: 'INTERNAL', message: `nofile: password_file: cannot read ${missing} (ENOENT)` } });
    expect(seen).toEqual([]);
  });

  it('every secret of the format is masked in show and list; a PUT that sends the masks back keeps the stored values', async () => {
    const body = { name: 'el', format: 'rpm', kind: 'local', gpg_key: '-----BEGIN PGP PRIVATE KEY BLOCK-----\nsecret-key-body\n', gpg_passphrase: 'open-sesame' };
    const created = await api('POST', '', body);
    expect(created.status).toBe(201);
    for (const text of [created.text, (await api('GET', '/el')).text, (await api('GET', '')).text]) {
      expect(text).not.toMatch(/secret-key-body|open-sesame|PGP/);
    }
    const shown = (await api('GET', '/el')).json;
    expect(shown.options).toEqual({ gpg_key: '********', gpg_passphrase: '********' });
    // what `repo update --set` does: GET, change one key, PUT the whole definition back
    const put = await api('PUT', '/el', { format: shown.format, kind: shown.kind, ...shown.options, gpg_passphrase_env: ENV_PW });
    expect(put.status).toBe(200);
    expect(put.json.options).toEqual({ gpg_key: '********', gpg_passphrase: '********', gpg_passphrase_env: ENV_PW });
    expect((await srv.svc.meta.repos.get('el'))!.options).toEqual({ gpg_key: body.gpg_key, gpg_passphrase: 'open-sesame', gpg_passphrase_env: ENV_PW });
  });

  it('the mask for a secret that is not stored is refused, naming the key', async () => {
    expect((await api('POST', '', { name: 'el2', format: 'rpm', kind: 'local' })).status).toBe(201);
    const r = await api('PUT', '/el2', { format: 'rpm', kind: 'local', gpg_passphrase: '********' });
    expect(r.status).toBe(400);
    expect(r.json).toEqual({ error: { code: 'BAD_REQUEST', message: 'repository: gpg_passphrase is the masked value "********"; give the secret itself (or gpg_passphrase_file / gpg_passphrase_env)' } });
    expect((await srv.svc.meta.repos.get('el2'))!.options).toEqual({});
  });

  it('no secret reached the log', () => {
    expect(logLines.length).toBeGreaterThan(10);
    const all = logLines.join('\n');
    for (const s of ['pw-from-file', 'pw-from-env', 'stored-pw', 'secret-key-body', 'open-sesame']) expect(all, s).not.toContain(s);
  });
});
