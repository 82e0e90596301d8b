import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';

/**
 * Temp space of one process: `<root>/<id>/`, owned through an exclusive SQLite lock on
 * `<root>/<id>.owner` held for the life of the process. It is an fcntl lock, so the kernel
 * drops it when the process dies, however it dies (SIGKILL, OOM), and it holds across pid
 * namespaces (containers sharing a volume), where a pid check would not.
 */
export class OwnedTempDir {
  private constructor(readonly dir: string, private readonly lock: Database.Database) {}

  static async create(root: string): Promise<OwnedTempDir> {
    await fsp.mkdir(root, { recursive: true });
    const id = `p-${randomUUID()}`;
    // Lock first, then the directory: a sweeper never sees an unowned directory of a live process.
    const lock = new Database(join(root, `${id}.owner`));
    lock.pragma('journal_mode = MEMORY');
    lock.pragma('locking_mode = EXCLUSIVE');
    lock.exec('BEGIN EXCLUSIVE');
    const dir = join(root, id);
    await fsp.mkdir(dir, { recursive: true });
    return new OwnedTempDir(dir, lock);
  }

  /** Removes this process's temp space (at a clean shutdown, once nothing writes to it). */
  async release(): Promise<void> {
    await fsp.rm(this.dir, { recursive: true, force: true });
    this.lock.close();
    await fsp.rm(`${this.dir}.owner`, { force: true });
  }
}

/** True while the process that created `<id>.owner` is alive. */
function ownerAlive(lockFile: string): boolean {
  let db: Database.Database | undefined;
  try {
    db = new Database(lockFile, { fileMustExist: true, timeout: 0 });
    db.pragma('journal_mode = MEMORY');
    db.exec('BEGIN EXCLUSIVE');
    db.exec('ROLLBACK');
    return false;
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_BUSY') return true;
    return false;
  } finally {
    db?.close();
  }
}

export interface TempEntry {
  path: string;
  bytes: number;
  /** Last write, for age rules on live processes' files. */
  mtimeMs: number;
}

async function sizeOf(path: string): Promise<number> {
  let total = 0;
  for (const name of await fsp.readdir(path).catch(() => [] as string[])) {
    const st = await fsp.stat(join(path, name)).catch(() => null);
    if (st?.isFile()) total += st.size;
  }
  return total;
}

/**
 * The temp directories under `root` whose owner process is gone, with their size; removed
 * unless `dryRun`. Directories of live processes (this one included) are never touched.
 */
export async function sweepDeadTempDirs(root: string, dryRun = false): Promise<TempEntry[]> {
  const out: TempEntry[] = [];
  for (const name of await fsp.readdir(root).catch(() => [] as string[])) {
    if (!name.endsWith('.owner')) continue;
    const lockFile = join(root, name);
    if (ownerAlive(lockFile)) continue;
    const dir = lockFile.slice(0, -'.owner'.length);
    out.push({ path: dir, bytes: await sizeOf(dir), mtimeMs: 0 });
    if (dryRun) continue;
    await fsp.rm(dir, { recursive: true, force: true });
    await fsp.rm(lockFile, { force: true });
    await fsp.rm(`${lockFile}-journal`, { force: true });
  }
  return out;
}

/** Files directly under `root` (older layouts) and in live processes' directories under it, for age-based cleanup. */
export async function liveTempFiles(root: string): Promise<TempEntry[]> {
  const out: TempEntry[] = [];
  const visit = async (dir: string, depth: number) => {
    for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
      const path = join(dir, name);
      const st = await fsp.stat(path).catch(() => null);
      if (st?.isFile() && !/\.owner(-journal)?$/.test(name)) out.push({ path, bytes: st.size, mtimeMs: st.mtimeMs });
      else if (st?.isDirectory() && depth === 0 && ownerAlive(`${path}.owner`)) await visit(path, 1);
    }
  };
  await visit(root, 0);
  return out;
}

/** Temp dirs of dead processes at once; files of live ones (and loose ones) idle since `before`: removed unless dryRun. */
export async function* sweepLocalTemp(root: string, before: number, dryRun: boolean): AsyncIterable<{ name: string; bytes: number }> {
  for (const dead of await sweepDeadTempDirs(root, dryRun)) yield { name: dead.path, bytes: dead.bytes };
  for (const f of await liveTempFiles(root)) {
    if (f.mtimeMs >= before) continue;
    if (!dryRun) await fsp.rm(f.path, { force: true });
    yield { name: f.path, bytes: f.bytes };
  }
}
