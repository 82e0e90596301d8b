import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/lib/errors.js';
import { readTgzEntries } from '../../src/lib/tgz.js';

/** A .tar.gz of these entries, built with tar-stream (`trailer`: bytes appended after the end of the archive). */
async function tgz(entries: Record<string, Buffer | string>, trailer = 0): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, body] of Object.entries(entries)) pack.entry({ name }, typeof body === 'string' ? Buffer.from(body) : body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  if (trailer) chunks.push(Buffer.alloc(trailer));
  return gzipSync(Buffer.concat(chunks));
}

async function failure(p: Promise<unknown>): Promise<AppError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected an AppError');
}

const read = (buf: Buffer, want: (n: string) => boolean, limits?: Parameters<typeof readTgzEntries>[2]['limits']) =>
  readTgzEntries(Readable.from([buf]), want, { what: 'x.tgz', limits });

describe('readTgzEntries: bounded entries, sizes and counts', () => {
  it('returns the selected regular files and skips the rest', async () => {
    const found = await read(await tgz({ 'pkg/Chart.yaml': 'name: a\n', 'pkg/big.bin': Buffer.alloc(50_000, 1), 'pkg/values.yaml': 'x: 1\n' }), (n) => n.endsWith('.yaml'));
    expect([...found.keys()]).toEqual(['pkg/Chart.yaml', 'pkg/values.yaml']);
    expect(found.get('pkg/Chart.yaml')!.toString()).toBe('name: a\n');
  });

  it('more entries than maxEntries: 400 naming the archive and the limit', async () => {
    const many = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`f${i}`, 'x']));
    const e = await failure(read(await tgz(many), () => false, { maxEntries: 5 }));
    expect([e.status, e.message]).toEqual([400, 'x.tgz has more than 5 entries']);
    expect((await read(await tgz(many), () => false, { maxEntries: 6 })).size).toBe(0);
  });

  it('a selected entry above maxEntryBytes: 400 naming the entry; a skipped one of that size is fine', async () => {
    const buf = await tgz({ 'a/Chart.yaml': Buffer.alloc(2049, 0x61) });
    const e = await failure(read(buf, (n) => n.endsWith('Chart.yaml'), { maxEntryBytes: 2048 }));
    expect([e.status, e.message]).toEqual([400, 'a/Chart.yaml in x.tgz is larger than 2048 bytes']);
    expect((await read(buf, () => false, { maxEntryBytes: 2048 })).size).toBe(0);
  });

  it('an archive that unpacks past maxTotalBytes: 413, by declared sizes and by bytes after the last entry', async () => {
    const big = await failure(read(await tgz({ a: Buffer.alloc(40_000), b: Buffer.alloc(40_000) }), () => false, { maxTotalBytes: 64_000 }));
    expect([big.status, big.message]).toEqual([413, 'x.tgz unpacks to more than 64000 bytes']);
    // zeros after the end of the archive are declared by no header: a gzip bomb of them is cut off as well
    const bomb = await tgz({ a: 'x' }, 5_000_000);
    expect(bomb.length).toBeLessThan(10_000);
    const e = await failure(read(bomb, () => false, { maxTotalBytes: 1_000_000 }));
    expect([e.status, e.message]).toEqual([413, 'x.tgz unpacks to more than 1000000 bytes']);
  });

  it('not gzip at all: 400 naming the archive', async () => {
    const e = await failure(read(Buffer.from('plain text, not gzip'), () => true));
    expect(e.status).toBe(400);
    expect(e.message).toMatch(/^x\.tgz is not a valid \.tar\.gz: /);
  });
});
