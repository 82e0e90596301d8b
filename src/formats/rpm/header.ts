import { Transform, type TransformCallback } from 'node:stream';
import { AppError } from '../../lib/errors.js';

/** The largest signature + main header accepted (the payload after it is streamed, never held). */
export const RPM_HEADER_MAX = 32 * 1024 * 1024;
const LEAD_SIZE = 96;
const LEAD_MAGIC = 0xedabeedb;
const HEADER_MAGIC = 0x8eade8;

export interface Dep {
  name: string;
  flags?: string;
  epoch?: string;
  ver?: string;
  rel?: string;
  pre?: boolean;
}

export const DEP_KINDS = ['provides', 'requires', 'conflicts', 'obsoletes', 'suggests', 'enhances', 'recommends', 'supplements'] as const;
export type DepKind = (typeof DEP_KINDS)[number];

export interface RpmFile {
  path: string;
  type?: 'dir' | 'ghost';
}

export interface Changelog {
  author: string;
  date: number;
  text: string;
}

/** What repodata needs from a package, parsed once at upload and stored with its row. */
export interface RpmMeta {
  name: string;
  arch: string;
  epoch: string;
  version: string;
  release: string;
  summary: string;
  description: string;
  packager: string;
  url: string;
  license: string;
  vendor: string;
  group: string;
  buildhost: string;
  sourcerpm: string;
  buildTime: number;
  installedSize: number;
  archiveSize: number;
  headerStart: number;
  headerEnd: number;
  deps: Partial<Record<DepKind, Dep[]>>;
  files: RpmFile[];
  changelogs: Changelog[];
}

const TAG = {
  NAME: 1000, VERSION: 1001, RELEASE: 1002, EPOCH: 1003, SUMMARY: 1004, DESCRIPTION: 1005, BUILDTIME: 1006,
  BUILDHOST: 1007, SIZE: 1009, VENDOR: 1011, LICENSE: 1014, PACKAGER: 1015, GROUP: 1016, URL: 1020, ARCH: 1022,
  OLDFILENAMES: 1027, FILEMODES: 1030, FILEFLAGS: 1037, SOURCERPM: 1044, ARCHIVESIZE: 1046,
  CHANGELOGTIME: 1080, CHANGELOGNAME: 1081, CHANGELOGTEXT: 1082, SOURCEPACKAGE: 1106,
  DIRINDEXES: 1116, BASENAMES: 1117, DIRNAMES: 1118, LONGSIZE: 5009,
} as const;
// Signature header: payload sizes (rpm moves ARCHIVESIZE here).
const SIG_PAYLOADSIZE = 1007;
const SIG_LONGARCHIVESIZE = 271;

/** [name, flags, version] tags of each dependency kind. */
const DEP_TAGS: Record<DepKind, [number, number, number]> = {
  provides: [1047, 1112, 1113],
  requires: [1049, 1048, 1050],
  conflicts: [1054, 1053, 1055],
  obsoletes: [1090, 1114, 1115],
  recommends: [5046, 5048, 5047],
  suggests: [5049, 5051, 5050],
  supplements: [5052, 5054, 5053],
  enhances: [5055, 5057, 5056],
};

const SENSE_PREREQ = 1 << 6;
const SENSE_SCRIPT_PRE = 1 << 9;
const SENSE_SCRIPT_POST = 1 << 10;
const FILE_GHOST = 1 << 6;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
// createrepo_c keeps the newest 10 changelog entries by default.
const CHANGELOG_LIMIT = 10;

type Value = string | string[] | number[];

function bad(msg: string): AppError {
  return new AppError('BAD_REQUEST', `not a valid RPM package: ${msg}`);
}

/** Size in bytes of the header structure starting at `at`, from its 16-byte intro; null when not all there yet. */
function headerSize(buf: Buffer, at: number, what: string): number | null {
  if (buf.length < at + 16) return null;
  if (buf.readUIntBE(at, 3) !== HEADER_MAGIC || buf[at + 3] !== 1) throw bad(`bad ${what} header magic`);
  const count = buf.readUInt32BE(at + 8);
  const store = buf.readUInt32BE(at + 12);
  const size = 16 + count * 16 + store;
  if (at + size > RPM_HEADER_MAX) throw new AppError('BAD_REQUEST', `RPM header is larger than the ${RPM_HEADER_MAX}-byte limit`);
  return size;
}

/** Tag -> value of one header structure (strings and integer arrays; binary tags are skipped). */
function readHeader(buf: Buffer, at: number): Map<number, Value> {
  const count = buf.readUInt32BE(at + 8);
  const storeSize = buf.readUInt32BE(at + 12);
  const store = at + 16 + count * 16;
  const out = new Map<number, Value>();
  const cstring = (off: number): [string, number] => {
    const end = buf.indexOf(0, off);
    if (end < 0 || end >= store + storeSize) throw bad('unterminated string in header');
    return [buf.toString('utf8', off, end), end + 1];
  };
  for (let i = 0; i < count; i++) {
    const e = at + 16 + i * 16;
    const tag = buf.readUInt32BE(e);
    const type = buf.readUInt32BE(e + 4);
    const off = store + buf.readUInt32BE(e + 8);
    const n = buf.readUInt32BE(e + 12);
    if (off >= store + storeSize && n > 0) throw bad(`tag ${tag} points outside the header`);
    const width = { 2: 1, 3: 2, 4: 4, 5: 8 }[type];
    if (width !== undefined) {
      if (off + n * width > store + storeSize) throw bad(`tag ${tag} runs past the header`);
      const nums: number[] = [];
      for (let k = 0; k < n; k++) {
        const p = off + k * width;
        nums.push(width === 1 ? buf[p] : width === 2 ? buf.readUInt16BE(p) : width === 4 ? buf.readUInt32BE(p) : Number(buf.readBigUInt64BE(p)));
      }
      out.set(tag, nums);
    } else if (type === 6 || type === 9) {
      out.set(tag, cstring(off)[0]); // i18n strings: the first (C) locale
    } else if (type === 8) {
      const list: string[] = [];
      let p = off;
      for (let k = 0; k < n; k++) {
        const [s, next] = cstring(p);
        list.push(s);
        p = next;
      }
      out.set(tag, list);
    }
  }
  return out;
}

/** A dependency version as createrepo_c splits it: `[epoch:]version[-release]`, epoch 0 when absent. */
export function splitEvr(evr: string): Pick<Dep, 'epoch' | 'ver' | 'rel'> {
  if (!evr) return {};
  const colon = evr.indexOf(':');
  const epoch = colon > 0 ? evr.slice(0, colon) : '0';
  const vr = colon >= 0 ? evr.slice(colon + 1) : evr;
  const dash = vr.lastIndexOf('-');
  return dash >= 0 ? { epoch, ver: vr.slice(0, dash), rel: vr.slice(dash + 1) } : { epoch, ver: vr };
}

function flagName(flags: number): string | undefined {
  return ({ 2: 'LT', 4: 'GT', 8: 'EQ', 10: 'LE', 12: 'GE' } as Record<number, string>)[flags & 0xf];
}

function isPrimaryFile(path: string): boolean {
  return path.startsWith('/etc/') || path === '/usr/lib/sendmail' || path.includes('bin/');
}

export function primaryFiles(files: RpmFile[]): RpmFile[] {
  return files.filter((f) => isPrimaryFile(f.path));
}

/** Dependencies with createrepo_c's filters: no rpmlib(), no requires the package satisfies itself, no repeats. */
function readDeps(h: Map<number, Value>, kind: DepKind, files: Set<string>, provided: Set<string>): Dep[] {
  const [nt, ft, vt] = DEP_TAGS[kind];
  const names = strings(h, nt);
  const flags = numbers(h, ft);
  const versions = strings(h, vt);
  const out: Dep[] = [];
  const seen = new Map<string, string>();
  names.forEach((name, i) => {
    const f = flags[i] ?? 0;
    const v = versions[i] ?? '';
    const flag = flagName(f);
    let pre = false;
    if (kind === 'requires') {
      if (name.startsWith('rpmlib(')) return;
      if (files.has(name) && isPrimaryFile(name)) return;
      if (provided.has(name)) return;
      pre = (f & (SENSE_PREREQ | SENSE_SCRIPT_PRE | SENSE_SCRIPT_POST)) !== 0;
      const key = `${flag ?? ''}\0${v}\0${pre}`;
      if (seen.get(name) === key) return;
      seen.set(name, key);
    }
    if (kind === 'provides') provided.add(name);
    out.push({ name, ...(flag ? { flags: flag } : {}), ...splitEvr(v), ...(pre ? { pre } : {}) });
  });
  return out;
}

function strings(h: Map<number, Value>, tag: number): string[] {
  const v = h.get(tag);
  return Array.isArray(v) ? v.map(String) : typeof v === 'string' ? [v] : [];
}

function numbers(h: Map<number, Value>, tag: number): number[] {
  const v = h.get(tag);
  return Array.isArray(v) && typeof v[0] === 'number' ? (v as number[]) : [];
}

function str(h: Map<number, Value>, tag: number): string {
  const v = h.get(tag);
  return typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : '';
}

function num(h: Map<number, Value>, ...tags: number[]): number | undefined {
  for (const t of tags) {
    const v = numbers(h, t)[0];
    if (v !== undefined) return v;
  }
  return undefined;
}

function readFiles(h: Map<number, Value>): RpmFile[] {
  const base = strings(h, TAG.BASENAMES);
  const dirs = strings(h, TAG.DIRNAMES);
  const idx = numbers(h, TAG.DIRINDEXES);
  const paths = base.length ? base.map((b, i) => `${dirs[idx[i]] ?? ''}${b}`) : strings(h, TAG.OLDFILENAMES);
  const modes = numbers(h, TAG.FILEMODES);
  const flags = numbers(h, TAG.FILEFLAGS);
  return paths.map((path, i) => {
    if (((modes[i] ?? 0) & S_IFMT) === S_IFDIR) return { path, type: 'dir' };
    if ((flags[i] ?? 0) & FILE_GHOST) return { path, type: 'ghost' };
    return { path };
  });
}

/** Changelog oldest first, as createrepo_c writes it: the newest entries kept, equal times made distinct. */
function readChangelogs(h: Map<number, Value>): Changelog[] {
  const times = numbers(h, TAG.CHANGELOGTIME);
  const names = strings(h, TAG.CHANGELOGNAME);
  const texts = strings(h, TAG.CHANGELOGTEXT);
  const out: Changelog[] = [];
  const n = Math.min(times.length, names.length, texts.length, CHANGELOG_LIMIT);
  let last = 0;
  for (let i = 0; i < n; i++) {
    out.unshift({ author: names[i].replace(/ +$/, ''), date: times[i], text: texts[i] });
    if (times[i] === last) {
      for (let k = 1, t = times[i]; k < out.length && out[k].date === t; k++, t++) out[k].date++;
    } else {
      last = times[i];
    }
  }
  return out;
}

function toMeta(sig: Map<number, Value>, h: Map<number, Value>, headerStart: number, headerEnd: number): RpmMeta {
  const name = str(h, TAG.NAME);
  const version = str(h, TAG.VERSION);
  if (!name || !version) throw bad('header has no name or version');
  const files = readFiles(h);
  const fileSet = new Set(files.map((f) => f.path));
  const provided = new Set<string>();
  const deps: RpmMeta['deps'] = {};
  for (const kind of DEP_KINDS) {
    const list = readDeps(h, kind, fileSet, provided);
    if (list.length) deps[kind] = list;
  }
  const epoch = num(h, TAG.EPOCH);
  return {
    name, version, release: str(h, TAG.RELEASE), epoch: String(epoch ?? 0),
    arch: h.has(TAG.SOURCEPACKAGE) ? 'src' : str(h, TAG.ARCH),
    summary: str(h, TAG.SUMMARY), description: str(h, TAG.DESCRIPTION), packager: str(h, TAG.PACKAGER),
    url: str(h, TAG.URL), license: str(h, TAG.LICENSE), vendor: str(h, TAG.VENDOR), group: str(h, TAG.GROUP),
    buildhost: str(h, TAG.BUILDHOST), sourcerpm: str(h, TAG.SOURCERPM),
    buildTime: num(h, TAG.BUILDTIME) ?? 0,
    installedSize: num(h, TAG.LONGSIZE, TAG.SIZE) ?? 0,
    archiveSize: num(h, TAG.ARCHIVESIZE) ?? num(sig, SIG_LONGARCHIVESIZE, SIG_PAYLOADSIZE) ?? 0,
    headerStart, headerEnd, deps, files, changelogs: readChangelogs(h),
  };
}

/**
 * Passes a package through unchanged while reading its lead, signature and main header (only that
 * region is held, up to RPM_HEADER_MAX). Anything that is not an RPM fails the stream with a 400,
 * so the upload is discarded before it is published. `meta` is set once the stream has ended.
 */
export class RpmHeaderTap extends Transform {
  meta?: RpmMeta;
  private chunks: Buffer[] = [];
  private have = 0;
  // Bytes needed before the next parse attempt, so the region is joined a few times, not per chunk.
  private need = LEAD_SIZE + 16;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.meta) {
      this.chunks.push(chunk);
      this.have += chunk.length;
      if (this.have >= this.need) {
        try {
          this.tryParse();
        } catch (err) {
          return cb(err as Error);
        }
      }
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    cb(this.meta ? null : bad('truncated before the end of its header'));
  }

  private tryParse(): void {
    const b = Buffer.concat(this.chunks);
    this.chunks = [b];
    if (b.readUInt32BE(0) !== LEAD_MAGIC) throw bad('no RPM lead');
    const sigSize = headerSize(b, LEAD_SIZE, 'signature')!;
    const start = LEAD_SIZE + sigSize + ((8 - (sigSize % 8)) % 8);
    const size = headerSize(b, start, 'main');
    if (size === null) {
      this.need = start + 16;
      return;
    }
    if (b.length < start + size) {
      this.need = start + size;
      return;
    }
    this.meta = toMeta(readHeader(b, LEAD_SIZE), readHeader(b, start), start, start + size);
    this.chunks = [];
  }
}
