import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';

describe('docker upload sessions are bounded per repo and reaped', () => {
  let srv: TestServer | undefined;
  afterEach(async () => {
    await srv?.close();
    srv = undefined;
  });

  const start = (repo: string) => fetch(`${srv!.url}/v2/${repo}/team/app/blobs/uploads/`, { method: 'POST' });

  it('refuses a new session past uploads.max_sessions (429), reaps expired ones to make room', async () => {
    srv = await startServer({ 'uploads.max_sessions': 3, 'uploads.session_ttl': '3s' });
    await srv.addRepo({ name: 'dl', format: 'docker', kind: 'local' });
    await srv.addRepo({ name: 'dl2', format: 'docker', kind: 'local' });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await start('dl');
      expect(r.status).toBe(202);
      ids.push(r.headers.get('docker-upload-uuid')!);
    }
    // One of them holds bytes on disk.
    const p = await fetch(`${srv.url}/v2/dl/team/app/blobs/uploads/${ids[0]}`, { method: 'PATCH', body: Buffer.alloc(4096, 1), headers: { 'content-type': 'application/octet-stream' } });
    expect(p.status).toBe(202);
    expect((await srv.svc.blob.parts.list(ids[0])).length).toBe(1);

    const full = await start('dl');
    expect(full.status).toBe(429);
    expect(await full.json()).toEqual({ errors: [{ code: 'TOOMANYREQUESTS', message: expect.any(String), detail: null }] });
    const other = await start('dl2'); // the bound is per repo
    expect(other.status).toBe(202);
    const otherId = other.headers.get('docker-upload-uuid')!;

    await new Promise((r) => setTimeout(r, 3100));
    const again = await start('dl');
    expect(again.status).toBe(202);
    for (const id of ids) expect(await srv.svc.meta.sessions.get(id)).toBeNull();
    expect(await srv.svc.blob.parts.list(ids[0])).toEqual([]);
    expect(await srv.svc.meta.sessions.count('dl')).toBe(1);
    // An expired session is unknown to the protocol, even before anything reaps it.
    expect(await srv.svc.meta.sessions.get(otherId)).not.toBeNull(); // dl2 was not full: nothing reaped there yet
    const stale = await fetch(`${srv.url}/v2/dl2/team/app/blobs/uploads/${otherId}`);
    expect(stale.status).toBe(404);
    expect(await srv.svc.meta.sessions.get(otherId)).toBeNull();
  });
});
