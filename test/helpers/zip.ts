import { crc32, deflateRawSync } from 'node:zlib';

export interface ZipOptions {
  /** Understate every entry's size in the central directory (a lying archive). */
  lie?: boolean;
  /** Unix modes by entry name (e.g. 0o120777 marks a symlink); entries then say they were made on Unix. */
  modes?: Record<string, number>;
}

/**
 * A zip of these entries (deflated), built here so tests can write archives no zip tool would:
 * bad names, lying sizes, symlinks. Sound input gives an archive every reader takes.
 */
export function makeZip(entries: Record<string, string | Buffer>, o: ZipOptions = {}): Buffer {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, text] of Object.entries(entries)) {
    const raw = Buffer.isBuffer(text) ? text : Buffer.from(text);
    const data = deflateRawSync(raw);
    const n = Buffer.from(name);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0); lh.writeUInt16LE(20, 4); lh.writeUInt16LE(8, 8);
    lh.writeUInt32LE(crc32(raw), 14); lh.writeUInt32LE(data.length, 18); lh.writeUInt32LE(raw.length, 22); lh.writeUInt16LE(n.length, 26);
    const ch = Buffer.alloc(46);
    const mode = o.modes?.[name];
    ch.writeUInt32LE(0x02014b50, 0); ch.writeUInt16LE(mode !== undefined ? (3 << 8) | 20 : 20, 4); ch.writeUInt16LE(20, 6); ch.writeUInt16LE(8, 10);
    ch.writeUInt32LE(crc32(raw), 16); ch.writeUInt32LE(data.length, 20); ch.writeUInt32LE(o.lie ? 100 : raw.length, 24); ch.writeUInt16LE(n.length, 28);
    if (mode !== undefined) ch.writeUInt32LE((mode << 16) >>> 0, 38);
    ch.writeUInt32LE(offset, 42);
    locals.push(lh, n, data);
    central.push(ch, n);
    offset += lh.length + n.length + data.length;
  }
  const cd = Buffer.concat(central);
  const eocd = Buffer.alloc(22);
  const count = Object.keys(entries).length;
  eocd.writeUInt32LE(0x06054b50, 0); eocd.writeUInt16LE(count, 8); eocd.writeUInt16LE(count, 10);
  eocd.writeUInt32LE(cd.length, 12); eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, eocd]);
}
