import { inflateRawSync } from 'node:zlib';
import type { Digest } from '../../lib/digest.js';
import { isContainedPath } from '../../lib/archive-paths.js';
import { AppError } from '../../lib/errors.js';
import type { BlobStore } from '../../storage/blob/types.js';
import { collect } from '../../lib/streams.js';

const MAX_CD_BYTES = 16 * 1024 * 1024;

async function readRange(blob: BlobStore, d: Digest, start: number, end: number): Promise<Buffer> {
  if (end < start) return Buffer.alloc(0);
  return collect(await blob.read(d, { start, end }));
}

function bad(msg: string): AppError {
  return new AppError('BAD_REQUEST', `invalid wheel: ${msg}`);
}

/**
 * Reads `<name>-<version>.dist-info/METADATA` out of a stored wheel with a few
 * ranged reads (end of central directory, central directory, one entry), so a
 * large wheel is never read whole. Works on any BlobStore. Any entry whose
 * name would unpack outside the install directory makes the wheel invalid.
 */
export async function readWheelMetadata(blob: BlobStore, d: Digest, size: number, maxBytes: number): Promise<Buffer> {
  if (size < 22) throw bad('too small to be a zip file');
  const tailStart = Math.max(0, size - (22 + 65535));
  const tail = await readRange(blob, d, tailStart, size - 1);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw bad('not a zip file (no end of central directory)');
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    // zip64: the locator sits just before the EOCD and points at the zip64 EOCD record.
    const loc = eocd - 20;
    if (loc < 0 || tail.readUInt32LE(loc) !== 0x07064b50) throw bad('broken zip64 locator');
    const recOffset = Number(tail.readBigUInt64LE(loc + 8));
    const rec = await readRange(blob, d, recOffset, recOffset + 55);
    if (rec.readUInt32LE(0) !== 0x06064b50) throw bad('broken zip64 end record');
    cdSize = Number(rec.readBigUInt64LE(40));
    cdOffset = Number(rec.readBigUInt64LE(48));
  }
  if (cdSize > MAX_CD_BYTES || cdOffset + cdSize > size) throw bad('central directory out of bounds');
  const cd = await readRange(blob, d, cdOffset, cdOffset + cdSize - 1);
  let found: { method: number; csize: number; usize: number; local: number } | undefined;
  for (let p = 0; p + 46 <= cd.length; ) {
    if (cd.readUInt32LE(p) !== 0x02014b50) throw bad('broken central directory');
    const method = cd.readUInt16LE(p + 10);
    let csize = cd.readUInt32LE(p + 20);
    let usize = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    let local = cd.readUInt32LE(p + 42);
    const name = cd.subarray(p + 46, p + 46 + nameLen).toString('utf8');
    if (!isContainedPath(name)) throw bad(`entry ${JSON.stringify(name.slice(0, 200))} is outside the wheel`);
    if (/^[^/]+\.dist-info\/METADATA$/.test(name)) {
      if (found) throw bad('more than one .dist-info/METADATA');
      // zip64 extra field (id 1) carries the sizes/offset that overflow.
      const extra = cd.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen);
      for (let e = 0; e + 4 <= extra.length; ) {
        const id = extra.readUInt16LE(e);
        const len = extra.readUInt16LE(e + 2);
        if (id === 1) {
          let q = e + 4;
          if (usize === 0xffffffff) { usize = Number(extra.readBigUInt64LE(q)); q += 8; }
          if (csize === 0xffffffff) { csize = Number(extra.readBigUInt64LE(q)); q += 8; }
          if (local === 0xffffffff) { local = Number(extra.readBigUInt64LE(q)); }
        }
        e += 4 + len;
      }
      found = { method, csize, usize, local };
    }
    p += 46 + nameLen + extraLen + commentLen;
  }
  if (!found) throw bad('no .dist-info/METADATA');
  if (found.usize > maxBytes || found.csize > maxBytes) throw new AppError('TOO_LARGE', 'wheel METADATA is too large');
  const lh = await readRange(blob, d, found.local, found.local + 29);
  if (lh.length < 30 || lh.readUInt32LE(0) !== 0x04034b50) throw bad('broken local header');
  const dataStart = found.local + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
  if (dataStart + found.csize > size) throw bad('entry out of bounds');
  const data = await readRange(blob, d, dataStart, dataStart + found.csize - 1);
  let out: Buffer;
  if (found.method === 0) out = data;
  else if (found.method === 8) {
    try {
      out = inflateRawSync(data, { maxOutputLength: maxBytes });
    } catch {
      throw bad('METADATA does not inflate');
    }
  } else throw bad(`unsupported compression method ${found.method}`);
  if (out.length !== found.usize) throw bad('METADATA size differs from the directory');
  return out;
}

/** Core metadata headers (RFC 822 style; the body after the blank line is the description). */
export function parseCoreMetadata(buf: Buffer): Map<string, string[]> {
  const text = buf.toString('utf8');
  const headerEnd = text.search(/\r?\n\r?\n/);
  const head = headerEnd >= 0 ? text.slice(0, headerEnd) : text;
  const out = new Map<string, string[]>();
  let last: string | undefined;
  for (const line of head.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && last) {
      const vals = out.get(last)!;
      vals[vals.length - 1] += `\n${line.trim()}`;
      continue;
    }
    const i = line.indexOf(':');
    if (i <= 0) continue;
    last = line.slice(0, i).trim().toLowerCase();
    const vals = out.get(last) ?? [];
    vals.push(line.slice(i + 1).trim());
    out.set(last, vals);
  }
  return out;
}
