import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/lib/errors.js';
import { startServer, SUITE_TOKEN, type TestServer } from '../helpers/server.js';
import { cleanupScratch, ensureDist, runCli } from '../cli/bin.js';

let srv: TestServer;

type Page = { entries: Record<string, unknown>[]; next?: string };
const audit = async (qs = ''): Promise<Page> => {
  const res = await fetch(`${srv.url}/api/v1/audit${qs}`, { headers: { authorization: srv.adminAuth } });
  expect(res.status).toBe(200);
  return (await res.json()) as Page;
};
/** The trail without the admin reads of the trail itself. */
const trail = async (qs = '') => (await audit(qs)).entries.filter((e) => e.subject !== 'audit');

beforeAll(async () => {
  ensureDist();
  srv = await startServer({ 'audit.retention': '1h' });
  await srv.addRepo({ name: 'files', format: 'generic', kind: 'local' });
  await srv.addRepo({ name: 'other', format: 'generic', kind: 'local' });
  // What an auth hook does: refuse, before the handler runs. The refusal is audited too.
  srv.svc.pipeline.before.push((op) => {
    if (op.subject?.startsWith('locked/')) throw new AppError('DENIED', 'not yours');
  });
  srv.svc.pipeline.before.push((op, req) => {
    if (req.headers['x-test-user']) op.identity = { user: String(req.headers['x-test-user']), tokenId: 'tok-1' };
  });
});
afterAll(async () => {
  await srv.close();
  cleanupScratch();
});

describe('audit trail', () => {
  it('records every write and delete, allowed, refused or failed, with who, from where and how it ended; reads are not recorded', async () => {
    expect((await fetch(`${srv.url}/files/a.txt`, { method: 'PUT', body: 'abc', headers: { 'x-test-user': 'alice' } })).status).toBe(201);
    expect((await fetch(`${srv.url}/files/a.txt`)).status).toBe(200);
    expect((await fetch(`${srv.url}/files/locked/b.txt`, { method: 'PUT', body: 'x' })).status).toBe(403);
    expect((await fetch(`${srv.url}/files/missing.txt`, { method: 'DELETE' })).status).toBe(404);
    expect((await fetch(`${srv.url}/files/a.txt`, { method: 'DELETE', headers: { 'x-test-user': 'alice' } })).status).toBe(204);
    const entries = (await trail('?repo=files')).map(({ id: _id, at, ...e }) => {
      expect(Math.abs(Date.now() - (at as number))).toBeLessThan(60_000);
      return e;
    });
    expect(entries).toEqual([
      { actor: 'alice', tokenId: 'tok-1', address: '127.0.0.1', action: 'delete', format: 'generic', repo: 'files', subject: 'a.txt', status: 204, outcome: 'ok' },
      { actor: 'anonymous', address: '127.0.0.1', action: 'delete', format: 'generic', repo: 'files', subject: 'missing.txt', status: 404, outcome: 'failed' },
      { actor: 'anonymous', address: '127.0.0.1', action: 'write', format: 'generic', repo: 'files', subject: 'locked/b.txt', status: 403, outcome: 'denied', bytes: 1 },
      { actor: 'alice', tokenId: 'tok-1', address: '127.0.0.1', action: 'write', format: 'generic', repo: 'files', subject: 'a.txt', status: 201, outcome: 'ok', bytes: 3 },
    ]);
  });

  it('filters by repo, user and since, and pages newest first with next/before', async () => {
    for (const n of [1, 2, 3]) await fetch(`${srv.url}/other/f${n}`, { method: 'PUT', body: 'x', headers: { 'x-test-user': 'bob' } });
    expect((await trail('?repo=other')).map((e) => e.subject)).toEqual(['f3', 'f2', 'f1']);
    expect((await trail('?user=bob')).map((e) => [e.action, e.subject])).toEqual([['write', 'f3'], ['write', 'f2'], ['write', 'f1']]);
    expect(await trail('?since=2026-01-01T00:00:00Z&repo=nope')).toEqual([]);
    const first = await audit('?repo=other&limit=2');
    expect(first.entries.map((e) => e.subject)).toEqual(['f3', 'f2']);
    const second = await audit(`?repo=other&limit=2&before=${first.next}`);
    expect(second.entries.map((e) => e.subject)).toEqual(['f1']);
    expect(second.next).toBeUndefined();
    const bad = await fetch(`${srv.url}/api/v1/audit?limit=ten`, { headers: { authorization: srv.adminAuth } });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: { code: 'BAD_REQUEST', message: 'limit must be a whole number' } });
  });

  it('`artifactapi audit` reads it through the API and straight from the data dir', async () => {
    await srv.addRepo({ name: 'cli', format: 'generic', kind: 'local' });
    expect((await fetch(`${srv.url}/cli/c.txt`, { method: 'PUT', body: 'abc', headers: { 'x-test-user': 'carol' } })).status).toBe(201);
    expect((await fetch(`${srv.url}/cli/c.txt`, { method: 'DELETE', headers: { 'x-test-user': 'carol' } })).status).toBe(204);
    const api = await runCli(['audit', '--url', srv.url, '--repo', 'cli', '--json'], { env: { ARTIFACTAPI_TOKEN: SUITE_TOKEN } });
    expect(api.code).toBe(0);
    expect((JSON.parse(api.stdout) as Page).entries.map((e) => [e.action, e.subject])).toEqual([['delete', 'c.txt'], ['write', 'c.txt']]);
    await srv.svc.audit.flush();
    const local = await runCli(['audit', '--data-dir', srv.dataDir, '--user', 'carol'], { env: srv.storeEnv });
    expect(local.code).toBe(0);
    const lines = local.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+TIME\s+USER\s+TOKEN\s+ADDRESS\s+ACTION\s+REPO\s+SUBJECT\s+STATUS\s+OUTCOME$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(2))).toEqual([
      ['carol', 'tok-1', '127.0.0.1', 'delete', 'cli', 'c.txt', '204', 'ok'],
      ['carol', 'tok-1', '127.0.0.1', 'write', 'cli', 'c.txt', '201', 'ok'],
    ]);
  });

  it('gc prunes entries older than audit.retention and records its own run', async () => {
    const old = Date.now() - 2 * 3600_000;
    await srv.svc.meta.audit.append([{ at: old, actor: 'mallory', action: 'write', repo: 'files', subject: 'ancient', status: 201, outcome: 'ok' }]);
    expect((await trail('?user=mallory')).length).toBe(1);
    const gc = await runCli(['gc', '--data-dir', srv.dataDir, '--json'], { env: { ...srv.storeEnv, ARTIFACTAPI_AUDIT_RETENTION: '1h' } });
    expect(gc.code).toBe(0);
    expect(JSON.parse(gc.stdout).summary['prune-audit']).toEqual({ count: 1, bytes: 0 });
    expect(await trail('?user=mallory')).toEqual([]);
    const runs = await trail('?user=system');
    expect(runs.map((e) => [e.action, e.subject, e.outcome])).toEqual([['admin', 'gc', 'ok']]);
    expect(typeof runs[0].bytes).toBe('number');
  });
});
