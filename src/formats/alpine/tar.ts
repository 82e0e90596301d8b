import { AppError } from '../../lib/errors.js';

/**
 * The little tar apk needs, on buffers already in memory (bounded by the caller): the control
 * stream of a package, an APKINDEX. apk's streams are tar segments that may lack the end blocks
 * (the signature stream is cut, as abuild-sign does), so reading stops at the end of the buffer too.
 */

export interface TarEntry {
  name: string;
  data: Buffer;
}

function field(h: Buffer, start: number, len: number): string {
  const raw = h.subarray(start, start + len);
  const nul = raw.indexOf(0);
  return (nul < 0 ? raw : raw.subarray(0, nul)).toString('utf8');
}

/** Regular files of a tar, in order; other entry types (pax headers, directories) are skipped. */
export function readTar(buf: Buffer, what: string): TarEntry[] {
  const out: TarEntry[] = [];
  let pos = 0;
  while (pos + 512 <= buf.length) {
    const h = buf.subarray(pos, pos + 512);
    if (h.every((b) => b === 0)) break;
    const sizeText = field(h, 124, 12).trim();
    const size = /^[0-7]*$/.test(sizeText) ? parseInt(sizeText || '0', 8) : NaN;
    if (!Number.isFinite(size) || pos + 512 + size > buf.length) throw new AppError('BAD_REQUEST', `${what}: malformed tar entry`);
    const type = String.fromCharCode(h[156]);
    const prefix = field(h, 345, 155);
    const name = (prefix ? `${prefix}/` : '') + field(h, 0, 100);
    if (type === '0' || type === '\0') out.push({ name, data: buf.subarray(pos + 512, pos + 512 + size) });
    pos += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

/** One ustar entry (header + data padded to 512), owned by root, mode 0644. */
export function tarEntry(name: string, data: Buffer, mtime: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(0o644, 8), 100);
  h.write(octal(0, 8), 108);
  h.write(octal(0, 8), 116);
  h.write(octal(data.length, 12), 124);
  h.write(octal(Math.floor(mtime), 12), 136);
  h.write(' '.repeat(8), 148);
  h.write('0', 156);
  h.write('ustar\0' + '00', 257, 'latin1');
  h.write('root', 265);
  h.write('root', 297);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return Buffer.concat([h, data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

/** The two zero blocks that end a tar archive. */
export const TAR_END = Buffer.alloc(1024);
