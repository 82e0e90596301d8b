import { pipeline, Readable, Transform } from 'node:stream';
import { createInflateRaw } from 'node:zlib';
import type { Digest } from './digest.js';
import { AppError } from './errors.js';
import { collect } from './streams.js';
import type { BlobStore } from '../storage/blob/types.js';

/** One central-directory entry of a zip archive. */
export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflate; anything else is refused when read. */
  method: number;
  compressedSize: number;
  size: number;
  crc32: number;
  /** Offset of the entry's local header. */
  localOffset: number;
  /** Unix mode from the external attributes when the entry was made on Unix (0 otherwise). */
  unixMode: number;
  isDirectory: boolean;
  isSymlink: boolean;
}

export interface ZipLimits {
  /** Refuse archives with more entries than this. */
  maxEntries?: number;
  /** Refuse central directories larger than this (bytes). */
  maxDirectoryBytes?: number;
}

/** An archive in the blob store, read with a few ranged reads: its entries, and any one of them as a stream. */
export interface ZipArchive {
  entries: ZipEntry[];
  open(entry: ZipEntry, maxBytes?: number): Promise<Readable>;
  read(entry: ZipEntry, maxBytes: number): Promise<Buffer>;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

/**
 * Opens a stored zip without reading it whole: end of central directory, the directory, then
 * only the entries asked for. `what` names the archive in errors ("wheel", "module zip").
 * Errors are BAD_REQUEST (`invalid <what>: …`) or TOO_LARGE.
 */
export async function openZip(blob: BlobStore, d: Digest, size: number, what = 'zip', limits: ZipLimits = {}): Promise<ZipArchive> {
  const bad = (msg: string) => new AppError('BAD_REQUEST', `invalid ${what}: ${msg}`);
  const range = async (start: number, end: number) => (end < start ? Buffer.alloc(0) : collect(await blob.read(d, { start, end })));
  const maxDir = limits.maxDirectoryBytes ?? 16 * 1024 * 1024;
  if (size < 22) throw bad('too small to be a zip file');
  const tailStart = Math.max(0, size - (22 + 65535));
  const tail = await range(tailStart, size - 1);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw bad('not a zip file (no end of central directory)');
  let count = tail.readUInt16LE(eocd + 10);
  let dirSize = tail.readUInt32LE(eocd + 12);
  let dirOffset = tail.readUInt32LE(eocd + 16);
  if (dirSize === 0xffffffff || dirOffset === 0xffffffff || count === 0xffff) {
    // zip64: the locator sits just before the EOCD and points at the zip64 end record.
    const loc = eocd - 20;
    if (loc < 0 || tail.readUInt32LE(loc) !== ZIP64_LOCATOR) throw bad('broken zip64 locator');
    const recOffset = Number(tail.readBigUInt64LE(loc + 8));
    if (recOffset + 56 > size) throw bad('broken zip64 end record');
    const rec = await range(recOffset, recOffset + 55);
    if (rec.readUInt32LE(0) !== ZIP64_EOCD) throw bad('broken zip64 end record');
    count = Number(rec.readBigUInt64LE(32));
    dirSize = Number(rec.readBigUInt64LE(40));
    dirOffset = Number(rec.readBigUInt64LE(48));
  }
  if (dirSize > maxDir) throw new AppError('TOO_LARGE', `${what}: central directory larger than ${maxDir} bytes`);
  if (limits.maxEntries !== undefined && count > limits.maxEntries) throw new AppError('TOO_LARGE', `${what}: more than ${limits.maxEntries} entries`);
  if (dirOffset + dirSize > size) throw bad('central directory out of bounds');
  const dir = await range(dirOffset, dirOffset + dirSize - 1);
  const entries: ZipEntry[] = [];
  for (let p = 0; p + 46 <= dir.length; ) {
    if (dir.readUInt32LE(p) !== CENTRAL) throw bad('broken central directory');
    if (limits.maxEntries !== undefined && entries.length >= limits.maxEntries) throw new AppError('TOO_LARGE', `${what}: more than ${limits.maxEntries} entries`);
    const madeBy = dir.readUInt16LE(p + 4) >> 8;
    const method = dir.readUInt16LE(p + 10);
    const crc32 = dir.readUInt32LE(p + 16);
    let compressedSize = dir.readUInt32LE(p + 20);
    let uncompressed = dir.readUInt32LE(p + 24);
    const nameLen = dir.readUInt16LE(p + 28);
    const extraLen = dir.readUInt16LE(p + 30);
    const commentLen = dir.readUInt16LE(p + 32);
    const external = dir.readUInt32LE(p + 38);
    let localOffset = dir.readUInt32LE(p + 42);
    if (p + 46 + nameLen + extraLen > dir.length) throw bad('broken central directory');
    const name = dir.subarray(p + 46, p + 46 + nameLen).toString('utf8');
    // zip64 extra field (id 1) carries the sizes and offset that overflow, in this order.
    const extra = dir.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen);
    for (let e = 0; e + 4 <= extra.length; ) {
      const id = extra.readUInt16LE(e);
      const len = extra.readUInt16LE(e + 2);
      if (id === 1) {
        let q = e + 4;
        const next = () => { const v = Number(extra.readBigUInt64LE(q)); q += 8; return v; };
        if (uncompressed === 0xffffffff && q + 8 <= e + 4 + len) uncompressed = next();
        if (compressedSize === 0xffffffff && q + 8 <= e + 4 + len) compressedSize = next();
        if (localOffset === 0xffffffff && q + 8 <= e + 4 + len) localOffset = next();
      }
      e += 4 + len;
    }
    const unixMode = madeBy === 3 ? external >>> 16 : 0;
    entries.push({
      name, method, compressedSize, size: uncompressed, crc32, localOffset, unixMode,
      isDirectory: name.endsWith('/'),
      isSymlink: (unixMode & S_IFMT) === S_IFLNK,
    });
    p += 46 + nameLen + extraLen + commentLen;
  }

  const open = async (entry: ZipEntry, maxBytes?: number): Promise<Readable> => {
    if (maxBytes !== undefined && entry.size > maxBytes) throw new AppError('TOO_LARGE', `${what}: ${entry.name} is larger than ${maxBytes} bytes`);
    if (entry.method !== 0 && entry.method !== 8) throw bad(`${entry.name}: unsupported compression method ${entry.method}`);
    if (entry.localOffset + 30 > size) throw bad(`${entry.name}: entry out of bounds`);
    const lh = await range(entry.localOffset, entry.localOffset + 29);
    if (lh.readUInt32LE(0) !== LOCAL) throw bad(`${entry.name}: broken local header`);
    const start = entry.localOffset + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
    if (start + entry.compressedSize > size) throw bad(`${entry.name}: entry out of bounds`);
    if (entry.compressedSize === 0) return Readable.from([]);
    const raw = await blob.read(d, { start, end: start + entry.compressedSize - 1 });
    const out = exactLength(entry.size, () => bad(`${entry.name} does not match its size in the directory`));
    const chain: NodeJS.ReadableStream[] = entry.method === 8 ? [raw, createInflateRaw(), out] : [raw, out];
    pipeline(chain as unknown as [Readable, Transform], (err) => {
      if (err && !out.destroyed) out.destroy(err);
    });
    return out;
  };

  return {
    entries,
    open,
    async read(entry, maxBytes) {
      try {
        return await collect(await open(entry, maxBytes));
      } catch (err) {
        if (err instanceof AppError) throw err;
        throw bad(`${entry.name} does not inflate`);
      }
    },
  };
}

/** Passes exactly `size` bytes through; more or fewer is an error (a lying directory or a bomb). */
function exactLength(size: number, error: () => Error): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (seen > size) return done(error());
      done(null, chunk);
    },
    flush(done) {
      done(seen === size ? null : error());
    },
  });
}
