import { promises as fsp } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { digestFromHex, hexOf, isDigest, type Digest } from '../../lib/digest.js';
import { AppError } from '../../lib/errors.js';
import type { ByteRange } from '../../lib/range.js';
import { fileSink, tempPath } from '../../lib/spool.js';
import { GrowingFile, type Growing } from '../../lib/tail.js';
import { OwnedTempDir, sweepLocalTemp } from '../../lib/temp-dirs.js';
import type { BlobStat, BlobStore, BlobWriter, Part, PartStore, Staged, StagingLeftover } from './types.js';

/**
 * data/cas/sha256/ab/<hex>; temp files in this process's own data/cas/tmp/<id>/ (same filesystem, so
 * commit is a rename); `serve` and `gc` remove those of processes that died (lib/temp-dirs.ts).
 */
export class FsBlobStore implements BlobStore {
  readonly tempDir: string;
  readonly parts: PartStore;
  private readonly root: string;

  private readonly casRoot: string;

  private constructor(root: string, private readonly temp: OwnedTempDir) {
    this.root = root;
    this.casRoot = join(resolve(root), 'sha256');
    this.tempDir = temp.dir;
    this.parts = new FsParts(join(root, 'sessions'));
  }

  static async open(root: string): Promise<FsBlobStore> {
    await fsp.mkdir(join(root, 'sha256'), { recursive: true });
    return new FsBlobStore(root, await OwnedTempDir.create(join(root, 'tmp')));
  }

  async close(): Promise<void> {
    await this.temp.release();
  }

  sendFile(d: Digest): string {
    return this.localPath(d);
  }

  openFill(): Growing {
    return new GrowingFile();
  }

  async quarantine(d: Digest, dir: string): Promise<void> {
    await fsp.mkdir(dir, { recursive: true });
    await fsp.rename(this.localPath(d), join(dir, hexOf(d))).catch(() => {});
  }

  async *sweepStaging(before: number, dryRun: boolean): AsyncIterable<StagingLeftover> {
    yield* sweepLocalTemp(dirname(this.tempDir), before, dryRun);
  }

  localPath(d: Digest): string {
    // Called on every download: a plain concatenation (root is absolute, hex is [0-9a-f]).
    const hex = hexOf(d);
    return `${this.casRoot}/${hex.slice(0, 2)}/${hex}`;
  }

  async stat(d: Digest): Promise<BlobStat | null> {
    try {
      const st = await fsp.stat(this.localPath(d));
      return { digest: d, size: st.size, createdAt: st.mtime };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async read(d: Digest, range?: ByteRange): Promise<Readable> {
    const path = this.localPath(d);
    try {
      const fh = await fsp.open(path, 'r');
      return fh.createReadStream({ start: range?.start, end: range?.end, highWaterMark: 1 << 20 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new AppError('BLOB_UNKNOWN', `blob ${d} not in store`);
      throw err;
    }
  }

  writer(): BlobWriter {
    const file = tempPath(this.tempDir);
    return { stream: fileSink(file), staged: { file } };
  }

  async commit(s: Staged, d: Digest, _size: number): Promise<void> {
    const tempFile = localFile(s);
    const dest = this.localPath(d);
    if (await this.stat(d)) {
      await fsp.rm(tempFile, { force: true });
      return;
    }
    await fsp.mkdir(join(dest, '..'), { recursive: true });
    await fsp.rename(tempFile, dest);
  }

  async discard(s: Staged): Promise<void> {
    await fsp.rm(localFile(s), { force: true });
  }

  async delete(d: Digest): Promise<void> {
    await fsp.rm(this.localPath(d), { force: true });
  }

  async *list(): AsyncIterable<BlobStat> {
    const base = join(this.root, 'sha256');
    for (const prefix of await fsp.readdir(base).catch(() => [] as string[])) {
      for (const hex of await fsp.readdir(join(base, prefix)).catch(() => [] as string[])) {
        const d = `sha256:${hex}`;
        if (!isDigest(d)) continue;
        const st = await fsp.stat(join(base, prefix, hex)).catch(() => null);
        if (st) yield { digest: digestFromHex(hex), size: st.size, createdAt: st.mtime };
      }
    }
  }
}


/** Parts as files <dir>/<session>/<offset>, on the CAS filesystem so a one-part upload commits by rename. */
class FsParts implements PartStore {
  constructor(private readonly dir: string) {}

  async open(session: string, offset: number): Promise<BlobWriter> {
    await fsp.mkdir(join(this.dir, session), { recursive: true });
    const file = join(this.dir, session, String(offset).padStart(16, '0'));
    return { stream: fileSink(file), staged: { file } };
  }

  async list(session: string): Promise<Part[]> {
    return (await this.stats(session)).map((p) => p.part);
  }

  /** The session's parts with their modification times, in order. */
  private async stats(session: string): Promise<{ part: Part; mtimeMs: number }[]> {
    const names = (await fsp.readdir(join(this.dir, session)).catch(() => [] as string[])).filter((n) => /^\d{16}$/.test(n)).sort();
    const out: { part: Part; mtimeMs: number }[] = [];
    for (const n of names) {
      const file = join(this.dir, session, n);
      const st = await fsp.stat(file).catch(() => null);
      if (st) out.push({ part: { offset: Number(n), size: st.size, staged: { file } }, mtimeMs: st.mtimeMs });
    }
    return out;
  }

  async read(p: Part): Promise<Readable> {
    const fh = await fsp.open(localFile(p.staged), 'r');
    return fh.createReadStream({ highWaterMark: 1 << 20 });
  }

  async drop(session: string): Promise<void> {
    await fsp.rm(join(this.dir, session), { recursive: true, force: true });
  }

  async *sessions(): AsyncIterable<{ session: string; changedAt: number; bytes: number }> {
    for (const session of await fsp.readdir(this.dir).catch(() => [] as string[])) {
      let changedAt = (await fsp.stat(join(this.dir, session)).catch(() => null))?.mtimeMs ?? 0;
      let bytes = 0;
      for (const { part, mtimeMs } of await this.stats(session)) {
        changedAt = Math.max(changedAt, mtimeMs);
        bytes += part.size;
      }
      yield { session, changedAt, bytes };
    }
  }
}

function localFile(s: Staged): string {
  if (!('file' in s)) throw new Error('filesystem store: staged content must be a local file');
  return s.file;
}
