import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/lib/digest.js';
import { runVerify } from '../../src/maintenance/verify.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { startUpstream, staticFiles, type FakeUpstream } from '../helpers/upstream.js';
import { corruptBlob, storesEnv } from '../helpers/blobs.js';

// Blobs are damaged through the BlobStore, so these run on fs and, under ARTIFACTAPI_TEST_STACK=1, on S3.

const sha = (b: Buffer): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const CLI = join(import.meta.dirname, '../../bin/artifactapi');

const corrupt = (srv: TestServer, d: Digest) => corruptBlob(srv.svc.blob, d);
/** The CLI on the server's stores (data dir, and the stack's database/bucket/redis when there is one). */
const cli = (srv: TestServer, args: string[]) =>
  execa('node', [CLI, ...args, '--data-dir', srv.dataDir], { reject: false, env: storesEnv(srv.svc.config) });

describe('verify', () => {
  let srv: TestServer;
  let up: FakeUpstream | undefined;
  afterEach(async () => {
    await srv?.close();
    await up?.close();
    up = undefined;
  });

  it('finds nothing on a healthy store, then reports a corrupt and a missing blob', async () => {
    srv = await startServer();
    await srv.addRepo({ name: 'files', format: 'generic', kind: 'local' });
    const a = randomBytes(100_000);
    const b = randomBytes(2_000_000);
    const c = randomBytes(500);
    for (const [p, body] of [['a', a], ['b', b], ['c', c]] as const) await fetch(`${srv.url}/files/${p}`, { method: 'PUT', body });
    const clean = await runVerify(srv.svc);
    expect(clean.findings).toEqual([]);
    expect(clean.checked).toBe(3);

    await corrupt(srv, sha(b));
    await srv.svc.blob.delete(sha(c));
    const report = await runVerify(srv.svc);
    expect(report.findings.map((f) => [f.digest, f.problem, f.rows.map((r) => r.path)])).toEqual(expect.arrayContaining([
      [sha(b), 'corrupt', ['b']],
      [sha(c), 'missing', ['c']],
    ]));
    expect(report.findings).toHaveLength(2);
    // Without --repair nothing changes.
    expect(await srv.svc.meta.files.get('files', 'b')).not.toBeNull();
  });

  it('--repair refetches remote content, quarantines the corrupt blob and drops unrecoverable local rows', async () => {
    const remoteBody = randomBytes(300_000);
    up = await startUpstream(staticFiles({ '/pkg.tgz': remoteBody }));
    srv = await startServer();
    await srv.addRepo({ name: 'cache', format: 'generic', kind: 'remote', upstream: up.url });
    await srv.addRepo({ name: 'files', format: 'generic', kind: 'local' });
    await (await fetch(`${srv.url}/cache/pkg.tgz`)).arrayBuffer();
    const localBody = randomBytes(10_000);
    await fetch(`${srv.url}/files/mine`, { method: 'PUT', body: localBody });
    await corrupt(srv, sha(remoteBody));
    await corrupt(srv, sha(localBody));

    const report = await runVerify(srv.svc, { repair: true });
    const byDigest = Object.fromEntries(report.findings.map((f) => [f.digest, f]));
    expect(byDigest[sha(remoteBody)].rows).toEqual([{ repo: 'cache', path: 'pkg.tgz', source: 'remote', repair: 'refetched' }]);
    expect(byDigest[sha(localBody)].rows).toEqual([{ repo: 'files', path: 'mine', source: 'local', repair: 'dropped' }]);
    expect(up.count('/pkg.tgz')).toBe(2);
    // The refetched copy is whole again, served from the cache.
    const res = await fetch(`${srv.url}/cache/pkg.tgz`);
    expect(res.headers.get('x-artifact-source')).toBe('cache');
    expect(Buffer.from(await res.arrayBuffer()).equals(remoteBody)).toBe(true);
    expect((await fetch(`${srv.url}/files/mine`)).status).toBe(404);
    // Out of the store: moved aside on disk (fs), deleted from the bucket (s3).
    expect(await srv.svc.blob.stat(sha(localBody))).toBeNull();
    if (srv.svc.config.storage.type === 'fs') expect(await fsp.readdir(join(srv.dataDir, 'quarantine'))).toContain(sha(localBody).slice(7));
    // A second pass finds a clean store.
    expect((await runVerify(srv.svc)).findings).toEqual([]);
  });

  it('the CLI prints a table and exits non-zero when it finds damage', async () => {
    srv = await startServer();
    await srv.addRepo({ name: 'files', format: 'generic', kind: 'local' });
    const body = randomBytes(5000);
    await fetch(`${srv.url}/files/x`, { method: 'PUT', body });
    const ok = await cli(srv, ['verify']);
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout).toMatch(/checked 1 blobs .*: 0 damaged/);
    await corrupt(srv, sha(body));
    const bad = await cli(srv, ['verify']);
    expect(bad.exitCode).toBe(1);
    expect(bad.stdout).toMatch(/1 damaged/);
    // the full digest, and the repo/path that references it
    expect(bad.stdout).toMatch(new RegExp(`${sha(body)}\\s+corrupt\\s+files/x\\s+none`));
  });

  it('verify --repair names the damage in plain text, with no raw JSON log lines on the terminal', async () => {
    const remoteBody = randomBytes(20_000);
    up = await startUpstream(staticFiles({ '/pkg.tgz': remoteBody }));
    srv = await startServer();
    await srv.addRepo({ name: 'cache', format: 'generic', kind: 'remote', upstream: up.url });
    await (await fetch(`${srv.url}/cache/pkg.tgz`)).arrayBuffer();
    await up.close(); // the refetch fails: a warning, which must not come out as JSON
    up = undefined;
    await corrupt(srv, sha(remoteBody));
    const r = await cli(srv, ['verify', '--repair']);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toContain(sha(remoteBody));
    expect(r.stdout).toMatch(/corrupt\s+cache\/pkg\.tgz\s+refetch-failed-dropped/);
    expect(`${r.stdout}\n${r.stderr}`).not.toMatch(/\{"level":/);
    expect(r.stderr).toMatch(/^warning: refetch failed \(repo=cache, path=pkg\.tgz, err=.+\)$/m);
  });
});
