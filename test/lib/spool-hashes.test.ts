import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spool } from '../../src/lib/spool.js';
import { GrowingFile, GrowingWindow } from '../../src/lib/tail.js';

describe('spool: extra hashes (npm integrity, sha1 shasum)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'spool-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('accepts a body whose sha512 and sha1 match, refuses one that does not and leaves no temp file', async () => {
    const body = randomBytes(100_000);
    const sha512 = createHash('sha512').update(body).digest('hex');
    const sha1 = createHash('sha1').update(body).digest('hex');
    const ok = await spool(Readable.from([body]), dir, { expect: { hashes: { sha512, sha1: sha1.toUpperCase() } } });
    expect(ok.size).toBe(body.length);
    await rm(ok.path);
    await expect(spool(Readable.from([body]), dir, { expect: { hashes: { sha512: '00'.repeat(64) } } })).rejects.toMatchObject({ code: 'DIGEST_INVALID' });
    await expect(spool(Readable.from([body]), dir, { expect: { hashes: { sha1: '00'.repeat(20) } } })).rejects.toMatchObject({ code: 'DIGEST_INVALID' });
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('GrowingFile readers', () => {
  it('hold the last byte back until the writer is done, and fail instead of completing when it fails', async () => {
    const { writeFileSync } = await import('node:fs');
    const dir = await mkdtemp(join(tmpdir(), 'tail-'));
    try {
      const path = join(dir, 'f');
      writeFileSync(path, Buffer.from('hello'));
      const g = new GrowingFile();
      g.progress(5, path);
      const r = g.reader()!;
      const got: Buffer[] = [];
      r.on('data', (c: Buffer) => got.push(c));
      const ended = new Promise<string>((res) => { r.on('end', () => res('end')); r.on('error', () => res('error')); });
      await new Promise((res) => setTimeout(res, 50));
      expect(Buffer.concat(got).toString()).toBe('hell');
      g.fail(new Error('did not verify'));
      expect(await ended).toBe('error');

      const g2 = new GrowingFile();
      g2.progress(5, path);
      const r2 = g2.reader()!;
      const got2: Buffer[] = [];
      r2.on('data', (c: Buffer) => got2.push(c));
      const ended2 = new Promise((res) => r2.on('end', res));
      await new Promise((res) => setTimeout(res, 20));
      g2.finish();
      await ended2;
      expect(Buffer.concat(got2).toString()).toBe('hello');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('GrowingWindow readers', () => {
  const drain = (r: Readable) => {
    const got: Buffer[] = [];
    r.on('data', (c: Buffer) => got.push(c));
    const ended = new Promise<'end' | 'error'>((res) => { r.on('end', () => res('end')); r.on('error', () => res('error')); });
    return { got, ended };
  };
  const tick = () => new Promise((res) => setTimeout(res, 20));

  it('hold the last byte back until finish, and fail instead of completing when the writer fails', async () => {
    const w = new GrowingWindow(1024);
    const a = drain(w.reader()!);
    w.push(Buffer.from('hel'));
    w.push(Buffer.from('lo'));
    await tick();
    expect(Buffer.concat(a.got).toString()).toBe('hell');
    w.fail(new Error('did not verify'));
    expect(await a.ended).toBe('error');

    const w2 = new GrowingWindow(1024);
    const b = drain(w2.reader()!);
    w2.push(Buffer.from('hello'));
    await tick();
    w2.finish(async () => { throw new Error('not needed: this reader kept up'); });
    expect(await b.ended).toBe('end');
    expect(Buffer.concat(b.got).toString()).toBe('hello');
    expect(w2.reader()).toBeNull(); // over: read the store
  });

  it('keeps only the last `limit` bytes; a reader that falls behind goes on from the committed copy at its offset', async () => {
    const body = randomBytes(200_000); // well above the paused reader's buffer
    const w = new GrowingWindow(1000);
    const slow = w.reader()!;
    slow.pause();
    const late: { got: Buffer[]; ended: Promise<string> }[] = [];
    const offsets: number[] = [];
    for (let i = 0; i < body.length; i += 500) {
      w.push(body.subarray(i, i + 500));
      if (i === 40_000) late.push(drain(w.reader()!)); // joins after the window moved on
    }
    w.finish(async (pos) => { offsets.push(pos); return Readable.from([body.subarray(pos)]); });
    const s = drain(slow);
    slow.resume();
    expect(await s.ended).toBe('end');
    expect(Buffer.concat(s.got).equals(body)).toBe(true);
    expect(await late[0].ended).toBe('end');
    expect(Buffer.concat(late[0].got).equals(body)).toBe(true);
    expect(offsets.length).toBe(2);
    expect(offsets.every((o) => o < body.length - 1000)).toBe(true);
  });
});
