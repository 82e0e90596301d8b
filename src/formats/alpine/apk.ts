import { createHash } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import { AppError, type ErrorCode } from '../../lib/errors.js';
import type { BodyCheck } from '../../lib/spool.js';
import { readTar } from './tar.js';

/**
 * An .apk (v2) is gzip streams one after the other: an optional signature stream (a tar holding
 * `.SIGN.*`), the control stream (a tar holding `.PKGINFO`) and the data stream. apk identifies a
 * package by `Q1` + base64 of the SHA-1 of the control stream's compressed bytes as stored.
 */

/** Bytes of the signature and control streams held while looking for the control stream. */
const HEAD_CAP = 8 * 1024 * 1024;

export interface ApkInfo {
  /** `.PKGINFO` as key -> values, in file order (depend, provides... repeat). */
  pkginfo: Map<string, string[]>;
  /** The `C:` value: `Q1` + base64(sha1(control stream)). */
  checksum: string;
}

interface Member {
  end: number;
  data: Buffer;
}

/** The gzip member starting at `buf[0]`, or null if `buf` does not hold all of it yet. Throws when it is not gzip. */
function gzipMember(buf: Buffer, what: string): Member | null {
  if (buf.length < 10) return null;
  if (buf[0] !== 0x1f || buf[1] !== 0x8b || buf[2] !== 8) throw new AppError('BAD_REQUEST', `${what} is not a sequence of gzip streams`);
  const flags = buf[3];
  let pos = 10;
  if (flags & 4) {
    if (buf.length < pos + 2) return null;
    pos += 2 + buf.readUInt16LE(pos);
  }
  for (const bit of [8, 16]) {
    if (!(flags & bit)) continue;
    const nul = buf.indexOf(0, pos);
    if (nul < 0) return null;
    pos = nul + 1;
  }
  if (flags & 2) pos += 2;
  if (buf.length <= pos) return null;
  let inflated: { buffer: Buffer; engine: { bytesWritten: number } };
  try {
    inflated = inflateRawSync(buf.subarray(pos), { info: true, maxOutputLength: HEAD_CAP }) as unknown as typeof inflated;
  } catch (err) {
    if ((err as { code?: string }).code === 'Z_BUF_ERROR') return null; // truncated: wait for more
    throw new AppError('BAD_REQUEST', `${what}: bad gzip stream (${(err as Error).message})`);
  }
  const end = pos + inflated.engine.bytesWritten + 8;
  return end <= buf.length ? { end, data: inflated.buffer } : null;
}

export function parsePkginfo(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.includes(' = ')) continue;
    const i = line.indexOf(' = ');
    const k = line.slice(0, i).trim();
    const v = line.slice(i + 3).trim();
    const list = out.get(k);
    if (list) list.push(v);
    else out.set(k, [v]);
  }
  return out;
}

/** Finds the control stream in the first bytes of a package (and where it ends); null until enough bytes are there. */
function scanHead(head: Buffer, what: string): (ApkInfo & { end: number }) | null {
  let pos = 0;
  for (let i = 0; i < 2; i++) {
    const m = gzipMember(head.subarray(pos), what);
    if (!m) return null;
    const entries = readTar(m.data, what);
    const pkginfo = entries.find((e) => e.name === '.PKGINFO');
    if (pkginfo) {
      const checksum = `Q1${createHash('sha1').update(head.subarray(pos, pos + m.end)).digest('base64')}`;
      return { pkginfo: parsePkginfo(pkginfo.data.toString('utf8')), checksum, end: pos + m.end };
    }
    if (i > 0 || !entries.some((e) => e.name.startsWith('.SIGN.'))) break;
    pos += m.end;
  }
  throw new AppError('BAD_REQUEST', `${what} has no control stream with a .PKGINFO`);
}

/**
 * Reads an .apk as it streams past (a BodyCheck for lib/spool.ts): holds only the first streams,
 * until the control stream is complete, and finds its checksum and .PKGINFO. `final` throws
 * `failWith` when the package is not a valid .apk or `accept` refuses it.
 */
export class ApkScanner implements BodyCheck {
  info: ApkInfo | undefined;
  /** Bytes seen: the package's size once the body is over. */
  size = 0;
  private chunks: Buffer[] = [];
  private held = 0;
  /** sha256 of the data stream, checked against .PKGINFO's `datahash` (abuild writes it; apk checks it). */
  private dataHash = createHash('sha256');
  private nextTry = 64 * 1024;

  constructor(private readonly what: string, private readonly accept?: (info: ApkInfo, size: number) => void, private readonly failWith: ErrorCode = 'BAD_REQUEST') {}

  update(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.info) return void this.dataHash.update(chunk);
    this.chunks.push(chunk);
    this.held += chunk.length;
    // Try again each time the held bytes double: linear work whatever the chunk size.
    if (this.held >= this.nextTry) {
      this.scan();
      this.nextTry = this.held * 2;
    }
    if (!this.info && this.held > HEAD_CAP) this.fail(`${this.what}: no control stream in its first ${HEAD_CAP} bytes`);
  }

  final(): void {
    if (!this.info) this.scan();
    if (!this.info) this.fail(`${this.what} is not an .apk package (no complete control stream)`);
    const datahash = this.info!.pkginfo.get('datahash')?.[0];
    if (datahash && datahash.toLowerCase() !== this.dataHash.digest('hex')) this.fail(`${this.what}: the data stream does not match .PKGINFO's datahash`);
    this.accept?.(this.info!, this.size);
  }

  private scan(): void {
    const head = Buffer.concat(this.chunks);
    this.chunks = [head];
    let found: ReturnType<typeof scanHead>;
    try {
      found = scanHead(head, this.what);
    } catch (err) {
      this.fail((err as Error).message);
    }
    if (!found) return;
    const { end, ...info } = found;
    this.info = info;
    this.dataHash.update(head.subarray(end));
    this.chunks = [];
  }

  private fail(message: string): never {
    throw new AppError(this.failWith, message);
  }
}
