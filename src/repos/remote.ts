import { AppError, isAppError } from '../lib/errors.js';
import { pipeline, Transform, type Readable } from 'node:stream';
import { hashInto, spool, type SpoolOptions } from '../lib/spool.js';
import { GrowingFile, GrowingWindow, type Growing } from '../lib/tail.js';
import type { BlobStore } from '../storage/blob/types.js';
import { deletionState, publish, type Written } from '../storage/ingest.js';
import type { FileRec, MetaStore, RepoDef } from '../storage/meta/types.js';
import type { Services } from './services.js';
import type { FileRef, Served } from './types.js';

/** A cache fill in progress in this process: its upstream answer, and the bytes as they land. */
interface Fill {
  growing: Growing;
  /** `cached`: no body to tail; `fetched` when the bytes came from the upstream for this fill (not a 304 or another instance's fill). */
  started: Promise<{ kind: 'body'; contentType?: string; length?: number; lastModified?: string } | { kind: 'cached'; rec: FileRec; fetched?: boolean }>;
  done: Promise<FileRec>;
}

/** In-process registry of running fills, so later requests tail the same download. */
export class Fills {
  private readonly running = new Map<string, Fill>();

  get(key: string): Fill | undefined {
    return this.running.get(key);
  }

  constructor(private readonly blob: BlobStore) {}

  start(key: string, run: (growing: Growing, started: (s: Awaited<Fill['started']>) => void) => Promise<FileRec>): Fill {
    // The store says where waiters follow the bytes: a temp file they tail (fs), or a window in memory (S3).
    const growing = this.blob.openFill();
    let resolveStarted!: (s: Awaited<Fill['started']>) => void;
    let rejectStarted!: (e: unknown) => void;
    const started = new Promise<Awaited<Fill['started']>>((res, rej) => { resolveStarted = res; rejectStarted = rej; });
    const done = run(growing, resolveStarted).then(
      (rec) => { growing.finish((pos) => this.blob.read(rec.digest, { start: pos, end: rec.size - 1 })); return rec; },
      (err) => { rejectStarted(err); growing.fail(err instanceof Error ? err : new Error(String(err))); throw err; },
    ).finally(() => this.running.delete(key));
    done.catch(() => {}); // observed through `started` and the readers
    started.catch(() => {});
    const fill = { growing, started, done };
    this.running.set(key, fill);
    return fill;
  }
}

/** Waits for a cache fill of `path` in `repo` still running in this process, if any (its outcome is the filler's to report). */
export async function fillSettled(svc: Services, repo: string, path: string): Promise<void> {
  await svc.fills.get(`${repo}:${path}`)?.done.catch(() => undefined);
}

/** Upstream 404s remembered for negative_ttl. */
export class NegativeCache {
  private readonly entries = new Map<string, number>();
  has(key: string): boolean {
    const until = this.entries.get(key);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.entries.delete(key);
    return false;
  }
  add(key: string, ttl: number): void {
    if (this.entries.size > 100_000) this.entries.clear();
    this.entries.set(key, Date.now() + ttl);
  }
  delete(key: string): void {
    this.entries.delete(key);
  }
}

/** Reads of cached files, written to the database in batches (LRU eviction reads them). */
export class AccessLog {
  private pending = new Map<string, { repo: string; path: string; at: number }>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly meta: MetaStore, private readonly everyMs = 5000) {}

  record(repo: string, path: string): void {
    this.pending.set(`${repo}\0${path}`, { repo, path, at: Date.now() });
    this.timer ??= setTimeout(() => void this.flush(), this.everyMs).unref();
  }

  async flush(): Promise<void> {
    this.timer = undefined;
    if (this.pending.size === 0) return;
    const batch = [...this.pending.values()];
    this.pending.clear();
    await this.meta.files.touch(batch).catch(() => {});
  }
}

/** Drops an upstream body we will not read (its abort error is expected, not a crash). */
function discard(body: import('node:stream').Readable): void {
  body.on('error', () => {});
  body.destroy();
}

/** `p`, or an UPSTREAM_TIMEOUT error after `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AppError('UPSTREAM_TIMEOUT', `upstream did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function isHtml(contentType: string | undefined): boolean {
  return !!contentType && /^\s*text\/html/i.test(contentType);
}

/**
 * A file through a remote repo: the cache when it has it (and, for mutable
 * files, while fresh), else one upstream fetch per key shared by every
 * concurrent request, streamed to all of them while it is written to the CAS.
 * Nothing is recorded unless the whole body arrived and verified.
 */
export async function remoteFile(svc: Services, repo: RepoDef, ref: FileRef): Promise<Served> {
  const key = `${repo.name}:${ref.path}`;
  const rec = await svc.meta.files.get(repo.name, ref.path);
  const ttl = svc.repos.metadataTtl(repo);
  if (rec && (!ref.mutable || Date.now() - rec.fetchedAt < ttl)) {
    svc.access.record(repo.name, ref.path);
    return { rec, source: 'cache', servedBy: repo.name, size: rec.size };
  }
  if (!rec && svc.negative.has(key)) throw new AppError('NOT_FOUND', `${ref.path} not found upstream (cached answer)`);

  const running = svc.fills.get(key);
  if (running) {
    svc.metrics.singleFlightJoin(repo.name);
    svc.log.info({ repo: repo.name, path: ref.path }, 'joined running upstream fetch');
  }
  const fill = running ?? svc.fills.start(key, (growing, started) =>
    svc.coord.singleFlight(`fill:${key}`, () => fetchIntoCache(svc, repo, ref, rec, growing, started)));
  try {
    const s = await fill.started;
    if (s.kind === 'cached') return { rec: s.rec, source: s.fetched ? 'remote' : 'cache', servedBy: repo.name, size: s.rec.size };
    if (rec) {
      // Revalidating a cached copy: wait for the new body, so that an upstream that fails or stalls
      // mid-body still falls back to the cached one, within upstream_timeout. The fill goes on.
      const fresh = await within(fill.done, svc.repos.upstreamSettings(repo).upstreamTimeout);
      return { rec: fresh, source: 'remote', servedBy: repo.name, size: fresh.size };
    }
    const now = Date.now();
    const provisional: FileRec = {
      repo: repo.name, path: ref.path, digest: ref.expect?.digest ?? ('' as FileRec['digest']), size: s.length ?? -1,
      contentType: s.contentType, source: 'remote', upstreamLastModified: s.lastModified, fetchedAt: now, lastAccess: now,
    };
    const body = ref.whole ? undefined : fill.growing.reader();
    if (!body) {
      const done = await fill.done;
      return { rec: done, source: 'remote', servedBy: repo.name, size: done.size };
    }
    return { rec: provisional, source: 'remote', servedBy: repo.name, body, size: s.length };
  } catch (err) {
    if (isAppError(err) && err.code === 'UPSTREAM_NOT_FOUND') {
      throw new AppError('NOT_FOUND', `${ref.path} not found upstream`);
    }
    if (rec) {
      svc.log.warn({ repo: repo.name, path: ref.path, err: (err as Error).message }, 'upstream failed; serving stale');
      return { rec, source: 'cache', servedBy: repo.name, size: rec.size, staleAge: Math.floor((Date.now() - rec.fetchedAt) / 1000) };
    }
    throw err;
  }
}

async function fetchIntoCache(
  svc: Services, repo: RepoDef, ref: FileRef, previous: FileRec | null, growing: Growing,
  started: (s: Awaited<Fill['started']>) => void,
): Promise<FileRec> {
  const key = `${repo.name}:${ref.path}`;
  // Another instance may have filled it while we waited for the shared lock.
  const again = await svc.meta.files.get(repo.name, ref.path);
  if (again && (!ref.mutable || (previous ? again.fetchedAt > previous.fetchedAt : true))) {
    started({ kind: 'cached', rec: again });
    return again;
  }
  let expectDigest = ref.expect?.digest;
  if (previous && ref.probe) {
    const current = await ref.probe(repo);
    if (current !== null && current === previous.digest) {
      const refreshed = { ...previous, fetchedAt: Date.now() };
      await svc.meta.files.put(refreshed);
      started({ kind: 'cached', rec: refreshed });
      return refreshed;
    }
    expectDigest = current ?? expectDigest;
  }
  const settings = svc.repos.upstreamSettings(repo);
  const url = ref.locate ? await ref.locate(repo) : new URL(ref.path.split('/').map(encodeURIComponent).join('/'), settings.upstream).toString();
  if (!url) throw new AppError('UPSTREAM_NOT_FOUND', `${ref.path} is not known upstream`);
  const headers = ref.upstreamHeaders ? await ref.upstreamHeaders(repo) : undefined;
  let reply;
  try {
    reply = await svc.upstream.get(settings, url, {
      accept: ref.accept, headers, etag: previous?.upstreamEtag, lastModified: previous?.upstreamLastModified,
    });
  } catch (err) {
    if (isAppError(err) && err.code === 'UPSTREAM_NOT_FOUND') svc.negative.add(key, svc.repos.negativeTtl(repo));
    throw err;
  }
  if (reply.status === 304 && previous) {
    const refreshed = { ...previous, ...sameBytes(previous, reply.headers), fetchedAt: Date.now() };
    await svc.meta.files.put(refreshed);
    started({ kind: 'cached', rec: refreshed });
    return refreshed;
  }
  const body = reply.body!;
  const contentType = reply.headers['content-type'] ?? ref.contentType;
  const rejectHtml = ref.rejectHtml ?? (!ref.mutable && !/\.html?$/i.test(ref.path));
  if (rejectHtml && isHtml(contentType)) {
    discard(body);
    throw new AppError('UPSTREAM_FAILED', 'upstream answered an HTML page where an artifact was expected');
  }
  const lengthHeader = reply.headers['content-length'];
  const length = lengthHeader !== undefined && !reply.headers['content-encoding'] ? Number(lengthHeader) : undefined;
  if (ref.expect?.size !== undefined && length !== undefined && length !== ref.expect.size) {
    discard(body);
    throw new AppError('UPSTREAM_FAILED', `upstream size ${length} differs from the expected ${ref.expect.size}`);
  }
  started({ kind: 'body', contentType, length: length ?? ref.expect?.size, lastModified: reply.headers['last-modified'] });
  const fillTimeout = AbortSignal.timeout((repo.options.fill_timeout as number | undefined) ?? svc.config.remote.fill_timeout);
  let written: Written;
  try {
    written = await receive(svc.blob, svc.meta, body, growing, {
      expect: { digest: expectDigest, size: length ?? ref.expect?.size, hashes: ref.expect?.hashes, check: ref.expect?.check },
      signal: fillTimeout,
    });
  } catch (err) {
    svc.log.warn({ repo: repo.name, path: ref.path, err: (err as Error).message }, 'upstream body failed; nothing cached');
    if (isAppError(err) && (err.code === 'DIGEST_INVALID' || err.code === 'SIZE_INVALID')) {
      throw new AppError('UPSTREAM_FAILED', `upstream body did not verify: ${err.message}`);
    }
    throw new AppError('UPSTREAM_FAILED', 'upstream body was cut short');
  }
  const now = Date.now();
  const rec: FileRec = {
    repo: repo.name, path: ref.path, digest: written.digest, size: written.size, contentType, source: 'remote',
    upstreamEtag: reply.headers.etag, upstreamLastModified: reply.headers['last-modified'], fetchedAt: now, lastAccess: now,
    ...(previous?.digest === written.digest ? sameBytes(previous, reply.headers) : {}),
  };
  // With a whole-body check the row waits for it (below); aliases go in with the row either way.
  const recordRows = async (m: MetaStore) => {
    await m.files.put(rec);
    for (const path of ref.aliases?.(written.digest) ?? []) {
      if (!(await m.files.get(repo.name, path))) await m.files.put({ ...rec, path, upstreamEtag: undefined });
    }
  };
  // Blob and row in one transaction: gc never sees the new blob unreferenced.
  try {
    await publish(svc, written, ref.verify ? undefined : recordRows);
  } catch (err) {
    await svc.blob.discard(written.staged).catch(() => {});
    throw err;
  }
  if (ref.verify) {
    // The blob is published without a row (gc.grace keeps it while it is checked); refused, it stays unreferenced.
    try {
      await ref.verify(repo, written);
    } catch (err) {
      svc.log.warn({ repo: repo.name, path: ref.path, err: (err as Error).message }, 'upstream body refused; nothing cached');
      throw err;
    }
    await svc.meta.tx(recordRows);
  }
  svc.negative.delete(key);
  return rec;
}

/**
 * Validators of a refetched file whose bytes did not change: the old Last-Modified (the upstream's,
 * else when we first got these bytes) stays, so clients' If-Modified-Since keeps matching; the
 * upstream's newest ETag is kept for our next revalidation.
 */
function sameBytes(previous: FileRec, headers: Record<string, string>): Partial<FileRec> {
  return {
    upstreamEtag: headers.etag ?? previous.upstreamEtag,
    upstreamLastModified: previous.upstreamLastModified ?? headers['last-modified'],
    meta: previous.upstreamLastModified || headers['last-modified'] ? previous.meta : { ...previous.meta, modifiedAt: modifiedAt(previous) },
  };
}

/** When a stored file's bytes last changed, as sent in Last-Modified: the upstream's, else when we got them. */
export function modifiedAt(rec: FileRec): number {
  const upstream = rec.upstreamLastModified ? Date.parse(rec.upstreamLastModified) : NaN;
  if (!Number.isNaN(upstream)) return upstream;
  return typeof rec.meta?.modifiedAt === 'number' ? rec.meta.modifiedAt : rec.fetchedAt;
}

/**
 * Streams an upstream body into the store while readers follow it: through a local temp file
 * they tail (GrowingFile), or straight into the store's writer with a window in memory
 * (GrowingWindow). Nothing unverified is ever visible; on failure nothing is left behind.
 */
async function receive(blob: BlobStore, meta: MetaStore, body: Readable, growing: Growing, o: SpoolOptions): Promise<Written> {
  if (growing instanceof GrowingFile) {
    const s = await spool(body, blob.tempDir, { ...o, onProgress: (n, p) => growing.progress(n, p) });
    return { staged: { file: s.path }, digest: s.digest, size: s.size };
  }
  const window = growing as GrowingWindow;
  // Read before the first byte: with a known digest the store writes in place (see storage/ingest.ts).
  const before = o.expect?.digest ? await deletionState(meta, o.expect.digest) : undefined;
  const writer = blob.writer(o.expect?.digest);
  const tap = new Transform({ transform(chunk: Buffer, _enc, cb) { window.push(chunk); cb(null, chunk); } });
  try {
    return { staged: writer.staged, before, ...(await hashInto(pipeline(body, tap, () => {}), writer.stream, o)) };
  } catch (err) {
    await blob.discard(writer.staged).catch(() => {});
    throw err;
  }
}
