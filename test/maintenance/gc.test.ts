import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { runGc, sweepBlob } from '../../src/maintenance/gc.js';
import type { Digest } from '../../src/lib/digest.js';
import { spool } from '../../src/lib/spool.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { startUpstream, staticFiles, type FakeUpstream } from '../helpers/upstream.js';
import { storesEnv } from '../helpers/blobs.js';

// Everything goes through the stores' interfaces (ages by gc's clock, the CLI pointed at the server's stores),
// so these run on fs + SQLite and, under ARTIFACTAPI_TEST_STACK=1, on S3 + Postgres + Redis.

const HOUR = 3_600_000;
const sha = (b: Buffer): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const CLI = join(import.meta.dirname, '../../bin/artifactapi');

/** A blob in the CAS whose row was last touched `age` ago and that no file row points at. */
async function oldUnreferencedBlob(srv: TestServer, age: number): Promise<Digest> {
  const body = randomBytes(2048);
  const s = await spool(Readable.from([body]), srv.svc.blob.tempDir);
  await srv.svc.blob.stage?.({ file: s.path }, s.digest, s.size);
  await srv.svc.blob.commit({ file: s.path }, s.digest, s.size);
  await srv.svc.blob.discard({ file: s.path });
  await srv.svc.meta.blobs.touch(s.digest, s.size, Date.now() - age);
  return s.digest;
}

/** A stored object with no row at all (a crash between rename and row), written now. */
async function orphanObject(srv: TestServer): Promise<Digest> {
  const body = randomBytes(1024);
  const s = await spool(Readable.from([body]), srv.svc.blob.tempDir);
  await srv.svc.blob.stage?.({ file: s.path }, s.digest, s.size);
  await srv.svc.blob.commit({ file: s.path }, s.digest, s.size);
  await srv.svc.blob.discard({ file: s.path });
  return s.digest;
}

describe('gc', () => {
  let srv: TestServer;
  let up: FakeUpstream | undefined;
  afterEach(async () => {
    await srv?.close();
    await up?.close();
    up = undefined;
  });

  it('deletes unreferenced blobs past the grace, keeps referenced and young ones; dry run deletes nothing', async () => {
    srv = await startServer({ 'gc.grace': '1h' });
    await srv.addRepo({ name: 'files', format: 'generic', kind: 'local' });
    const kept = randomBytes(4000);
    await fetch(`${srv.url}/files/kept.bin`, { method: 'PUT', body: kept });
    const dropped = randomBytes(3000);
    await fetch(`${srv.url}/files/dropped.bin`, { method: 'PUT', body: dropped });
    expect((await fetch(`${srv.url}/files/dropped.bin`, { method: 'DELETE' })).status).toBe(204);
    const old = await oldUnreferencedBlob(srv, 2 * HOUR);
    const orphan = await orphanObject(srv);

    const dry = await runGc(srv.svc, { dryRun: true });
    expect(dry.summary['delete-blob']?.count).toBe(1);
    expect(await srv.svc.blob.stat(old)).not.toBeNull();

    const report = await runGc(srv.svc);
    expect(report.actions.filter((a) => a.action === 'delete-blob').map((a) => a.digest)).toEqual([old]);
    // The orphan is young: kept for now.
    expect(report.actions.filter((a) => a.action === 'delete-orphan')).toEqual([]);
    expect(await srv.svc.blob.stat(old)).toBeNull();
    expect(await srv.svc.blob.stat(orphan)).not.toBeNull();
    // The just-deleted file's blob is younger than the grace: kept for now.
    expect(await srv.svc.blob.stat(sha(dropped))).not.toBeNull();
    // Two hours on, it and the orphan go; the referenced one never does.
    const later = await runGc(srv.svc, { now: Date.now() + 2 * HOUR });
    expect(later.actions.filter((a) => a.action === 'delete-orphan').map((a) => a.digest)).toEqual([orphan]);
    expect(await srv.svc.blob.stat(sha(dropped))).toBeNull();
    expect(await srv.svc.blob.stat(orphan)).toBeNull();
    const get = await fetch(`${srv.url}/files/kept.bin`);
    expect(Buffer.from(await get.arrayBuffer()).equals(kept)).toBe(true);
  });

  it('never reaps a blob that was touched again after it became a candidate (the re-check inside the transaction)', async () => {
    srv = await startServer({ 'gc.grace': '1h' });
    const d = await oldUnreferencedBlob(srv, 2 * HOUR);
    const cutoff = Date.now() - HOUR;
    expect(await srv.svc.meta.blobs.unreferenced(cutoff)).toContain(d);
    // A publish of the same bytes happens now (touch + commit in its own transaction)...
    await srv.svc.meta.blobs.touch(d, 2048);
    // ...so the sweep's re-check finds it young and leaves it.
    expect(await sweepBlob(srv.svc, d, cutoff)).toBeNull();
    expect(await srv.svc.blob.stat(d)).not.toBeNull();
  });

  it('runs as its own process while the server takes uploads, and loses none of them', async () => {
    srv = await startServer({ 'gc.grace': '1h' });
    await srv.addRepo({ name: 'files', format: 'generic', kind: 'local' });
    const old = await oldUnreferencedBlob(srv, 2 * HOUR);
    const bodies = Array.from({ length: 20 }, () => randomBytes(50_000 + Math.floor(Math.random() * 50_000)));
    const uploads = (async () => {
      for (const [i, b] of bodies.entries()) {
        // Slow bodies, so uploads are in flight while the gc processes run.
        const chunks = [b.subarray(0, 20_000), b.subarray(20_000)];
        const res = await fetch(`${srv.url}/files/u/${i}`, {
          method: 'PUT', duplex: 'half',
          body: Readable.toWeb(Readable.from((async function* () { for (const c of chunks) { yield c; await new Promise((r) => setTimeout(r, 10)); } })())) as ReadableStream,
        } as RequestInit);
        expect(res.status).toBe(201);
      }
    })();
    const gcs: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await execa('node', [CLI, 'gc', '--data-dir', srv.dataDir, '--json'], { env: { ...storesEnv(srv.svc.config), ARTIFACTAPI_GC_GRACE: '1h' } });
      gcs.push(r.stdout);
    }
    await uploads;
    const deleted = gcs.flatMap((out) => (JSON.parse(out).actions as { action: string; digest?: string }[]).filter((a) => a.action === 'delete-blob').map((a) => a.digest));
    expect(deleted).toEqual([old]);
    for (const [i, b] of bodies.entries()) {
      const res = await fetch(`${srv.url}/files/u/${i}`);
      expect(Buffer.from(await res.arrayBuffer()).equals(b)).toBe(true);
    }
  });

  it('with no grace at all, a gc looping beside uploads and remote fills still loses nothing (blob and row land in one transaction)', async () => {
    const remoteFiles: Record<string, Buffer> = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`/r${i}`, randomBytes(30_000 + i)]));
    up = await startUpstream(staticFiles(remoteFiles));
    srv = await startServer({ 'gc.grace': '0s' });
    await srv.addRepo({ name: 'files', format: 'generic', kind: 'local' });
    await srv.addRepo({ name: 'cache', format: 'generic', kind: 'remote', upstream: up.url });
    let stop = false;
    let sweeps = 0;
    const looping = (async () => {
      while (!stop) {
        await runGc(srv.svc);
        sweeps++;
      }
    })();
    const bodies = Array.from({ length: 30 }, (_, i) => randomBytes(10_000 + i));
    await Promise.all(bodies.map(async (b, i) => {
      expect((await fetch(`${srv.url}/files/g/${i}`, { method: 'PUT', body: b })).status).toBe(201);
    }));
    await Promise.all(Object.keys(remoteFiles).map(async (p) => (await fetch(`${srv.url}/cache${p}`)).arrayBuffer()));
    stop = true;
    await looping;
    expect(sweeps).toBeGreaterThan(0);
    for (const [i, b] of bodies.entries()) {
      const res = await fetch(`${srv.url}/files/g/${i}`);
      expect(res.status, `g/${i}`).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(b)).toBe(true);
    }
    for (const [p, b] of Object.entries(remoteFiles)) {
      const res = await fetch(`${srv.url}/cache${p}`);
      expect(res.headers.get('x-artifact-source')).toBe('cache');
      expect(Buffer.from(await res.arrayBuffer()).equals(b)).toBe(true);
    }
  });

  it('evicts the least recently used files of a remote repo above max_cache_size, never local ones', async () => {
    const files: Record<string, Buffer> = { '/a': randomBytes(1000), '/b': randomBytes(1000), '/c': randomBytes(1000) };
    up = await startUpstream(staticFiles(files));
    srv = await startServer({ 'gc.grace': '0s' });
    await srv.addRepo({ name: 'cache', format: 'generic', kind: 'remote', upstream: up.url, max_cache_size: '2500B' });
    await srv.addRepo({ name: 'mine', format: 'generic', kind: 'local' });
    await fetch(`${srv.url}/mine/big`, { method: 'PUT', body: randomBytes(10_000) });
    for (const p of ['a', 'b', 'c']) {
      await (await fetch(`${srv.url}/cache/${p}`)).arrayBuffer();
      await new Promise((r) => setTimeout(r, 5));
    }
    await srv.svc.access.flush();
    await new Promise((r) => setTimeout(r, 5));
    await (await fetch(`${srv.url}/cache/a`)).arrayBuffer(); // a is used again: b is now the least recent
    await srv.svc.access.flush();

    const report = await runGc(srv.svc);
    expect(report.actions.filter((a) => a.action === 'evict').map((a) => a.path)).toEqual(['b']);
    expect(await srv.svc.meta.files.get('cache', 'b')).toBeNull();
    expect(await srv.svc.blob.stat(sha(files['/b']))).toBeNull();
    expect(await srv.svc.meta.files.get('cache', 'a')).not.toBeNull();
    expect(await srv.svc.meta.files.get('mine', 'big')).not.toBeNull();
    // Evicted content is fetched again on demand.
    const again = await fetch(`${srv.url}/cache/b`);
    expect(again.headers.get('x-artifact-source')).toBe('remote');
    expect(Buffer.from(await again.arrayBuffer()).equals(files['/b'])).toBe(true);
  });

  it('removes abandoned temp files past the grace, not fresh ones', async () => {
    srv = await startServer({ 'gc.grace': '1h' });
    const stale = join(srv.svc.blob.tempDir, 'spool-dead');
    const fresh = join(srv.svc.blob.tempDir, 'spool-live');
    await fsp.writeFile(stale, 'x');
    await fsp.writeFile(fresh, 'y');
    const when = new Date(Date.now() - 2 * HOUR);
    await fsp.utimes(stale, when, when);
    await runGc(srv.svc);
    await expect(fsp.stat(stale)).rejects.toThrow();
    expect((await fsp.stat(fresh)).isFile()).toBe(true);
  });
});
