import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Layout } from '../formats/docker/oci-layout.js';
import { skopeo, TLS, which } from '../formats/docker/util.js';
import { authServer, run, type AuthTools } from './helpers.js';
import type { TestServer } from '../helpers/server.js';

let srv: TestServer & AuthTools;
let tmp: string;

beforeAll(async () => {
  srv = await authServer({ 'auth.login_slow_after': 1000, 'auth.login_max_failures': 1000 });
  tmp = await mkdtemp(join(tmpdir(), 'docker-auth-'));
  await srv.addRepo({ name: 'dpub', format: 'docker', kind: 'local' });
  await srv.addRepo({ name: 'dpriv', format: 'docker', kind: 'local', anonymous: 'none' });
  await srv.user('pusher', 'pusher-pass-1', [['dpub', ['write']], ['dpriv', ['write']]]);
  await srv.user('puller', 'puller-pass-1', [['dpriv', ['read']]]);
});
afterAll(async () => {
  await srv.close();
  await rm(tmp, { recursive: true, force: true });
});

const creds = (u: string, p: string) => [`--dest-creds=${u}:${p}`];
const fails = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected skopeo to fail');
};

describe.skipIf(!which('skopeo'))('docker with auth on (skopeo, the Bearer token dance)', () => {
  it('a user with write pushes with credentials; anonymous pulls the public repo through the token dance; without credentials the push is refused', async () => {
    const l = new Layout(join(tmp, 'img'));
    await l.write({ v1: await l.image({ layers: 2, layerSize: 50_000 }) });
    expect(await fails(skopeo('copy', ...TLS, `oci:${l.dir}:v1`, `docker://${srv.host}/dpub/app:v1`))).toMatch(/unauthorized|authentication required|401/i);
    await skopeo('copy', ...TLS, ...creds('pusher', 'pusher-pass-1'), `oci:${l.dir}:v1`, `docker://${srv.host}/dpub/app:v1`);
    const out = join(tmp, 'out');
    await skopeo('copy', ...TLS, `docker://${srv.host}/dpub/app:v1`, `oci:${out}:v1`);
    const raw = JSON.parse(await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${srv.host}/dpub/app:v1`)) as { layers: unknown[] };
    expect(raw.layers).toHaveLength(2);
  });

  it('a private repo: invisible to anonymous, pullable by a reader, and a reader cannot push', async () => {
    const l = new Layout(join(tmp, 'img2'));
    await l.write({ v1: await l.image({ layers: 1, layerSize: 10_000 }) });
    await skopeo('copy', ...TLS, ...creds('pusher', 'pusher-pass-1'), `oci:${l.dir}:v1`, `docker://${srv.host}/dpriv/secret:v1`);
    // Exactly what a repo that does not exist answers (distribution's NAME_UNKNOWN body).
    const hidden = await fails(skopeo('inspect', '--tls-verify=false', '--raw', `docker://${srv.host}/dpriv/secret:v1`));
    const missing = await fails(skopeo('inspect', '--tls-verify=false', '--raw', `docker://${srv.host}/dnothere/secret:v1`));
    expect(hidden).toContain('name unknown: repository name not known to registry: dpriv/secret"');
    expect(missing).toContain('name unknown: repository name not known to registry: dnothere/secret"');
    const raw = await skopeo('inspect', '--tls-verify=false', '--creds=puller:puller-pass-1', '--raw', `docker://${srv.host}/dpriv/secret:v1`);
    expect(JSON.parse(raw)).toHaveProperty('layers');
    expect(await fails(skopeo('copy', ...TLS, ...creds('puller', 'puller-pass-1'), `oci:${l.dir}:v1`, `docker://${srv.host}/dpriv/secret:v2`)))
      .toMatch(/denied|unauthorized|403|401/i);
  });

  it('skopeo login stores the credentials and later commands use them', async () => {
    const authfile = join(tmp, 'auth.json');
    await run('skopeo', ['login', '--tls-verify=false', '--authfile', authfile, '-u', 'puller', '-p', 'puller-pass-1', srv.host]);
    const raw = await skopeo('inspect', '--tls-verify=false', '--authfile', authfile, '--raw', `docker://${srv.host}/dpriv/secret:v1`);
    expect(JSON.parse(raw)).toHaveProperty('layers');
    expect(await fails(run('skopeo', ['login', '--tls-verify=false', '--authfile', join(tmp, 'bad.json'), '-u', 'puller', '-p', 'wrong', srv.host])))
      .toMatch(/401|unauthorized|invalid/i);
  });

  it.skipIf(!which('podman'))('podman login, then push and pull with the stored credentials; a read-only login cannot push', async (ctx) => {
    const l = new Layout(join(tmp, 'pod'));
    await l.write({ p: await l.image({ layers: 1, seed: 'podman-auth' }) });
    await skopeo('copy', ...TLS, ...creds('pusher', 'pusher-pass-1'), `oci:${l.dir}:p`, `docker://${srv.host}/dpriv/pod:1`);
    const root = join(tmp, 'podroot');
    const authfile = join(tmp, 'podman-auth.json');
    const base = ['--root', join(root, 'storage'), '--runroot', join(root, 'run'), '--storage-driver', 'vfs'];
    try {
      await run('podman', [...base, 'login', '--tls-verify=false', '--authfile', authfile, '-u', 'pusher', '-p', 'pusher-pass-1', srv.host]);
      const pulled = await run('podman', [...base, 'pull', '--tls-verify=false', '--authfile', authfile, `${srv.host}/dpriv/pod:1`]);
      expect(pulled.stdout.trim()).toMatch(/^[0-9a-f]{64}$/);
    } catch (err) {
      const e = err as { stderr?: string };
      if (/cannot re-exec|operation not permitted|cgroup/i.test(e.stderr ?? '')) ctx.skip(`podman cannot run here: ${e.stderr?.trim()}`);
      throw new Error(`podman: ${e.stderr}`);
    }
    await run('podman', [...base, 'push', '--tls-verify=false', '--authfile', authfile, `${srv.host}/dpriv/pod:1`, `${srv.host}/dpub/pushed:2`]);
    const tags = await fetch(`${srv.url}/v2/token?service=artifactapi&scope=repository:dpub/pushed:pull`);
    const { token } = (await tags.json()) as { token: string };
    const list = await fetch(`${srv.url}/v2/dpub/pushed/tags/list`, { headers: { authorization: `Bearer ${token}` } });
    expect(await list.json()).toEqual({ name: 'dpub/pushed', tags: ['2'] });
    const readonly = join(tmp, 'podman-ro.json');
    await run('podman', [...base, 'login', '--tls-verify=false', '--authfile', readonly, '-u', 'puller', '-p', 'puller-pass-1', srv.host]);
    expect(await fails(run('podman', [...base, 'push', '--tls-verify=false', '--authfile', readonly, `${srv.host}/dpriv/pod:1`, `${srv.host}/dpriv/pod:2`])))
      .toMatch(/denied|unauthorized|403|401/i);
  });
});
