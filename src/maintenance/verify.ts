import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import type { Digest } from '../lib/digest.js';
import { quarantineBlob } from '../repos/quarantine.js';
import { resolveFile } from '../repos/resolve.js';
import type { Services } from '../repos/services.js';
import type { FileRec } from '../storage/meta/types.js';

export interface VerifyFinding {
  digest: Digest;
  problem: 'corrupt' | 'missing';
  /** What --repair did for each row pointing at it. */
  rows: { repo: string; path: string; source: FileRec['source']; repair?: 'refetched' | 'dropped' | 'refetch-failed-dropped' }[];
}

export interface VerifyReport {
  checked: number;
  bytes: number;
  findings: VerifyFinding[];
  repaired: boolean;
}

/** sha256 of a stored blob, streamed; null when the store has no such object. */
async function rehash(svc: Services, d: Digest): Promise<{ digest: Digest; size: number } | null> {
  if (!(await svc.blob.stat(d))) return null;
  const hash = createHash('sha256');
  let size = 0;
  await pipeline(await svc.blob.read(d), new Writable({
    write(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb();
    },
  }));
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

/**
 * Re-hashes every stored blob and checks every row's blob exists. With `repair`:
 * corrupt blobs are quarantined; generic remote rows are refetched from their
 * upstream now, other remote rows dropped so the next request refetches them
 * through their format; local rows of damaged blobs are dropped (nothing can
 * bring them back) and reported.
 */
export async function runVerify(svc: Services, o: { repair?: boolean } = {}): Promise<VerifyReport> {
  const digests = new Set<Digest>();
  for await (const b of svc.meta.blobs.list()) digests.add(b.digest);
  for await (const b of svc.blob.list()) digests.add(b.digest);
  // Rows whose blob has no blob row at all still need checking.
  for (const repo of await svc.meta.repos.list()) {
    for await (const f of svc.meta.files.list(repo.name)) digests.add(f.digest);
  }

  const findings: VerifyFinding[] = [];
  let checked = 0;
  let bytes = 0;
  for (const d of digests) {
    const got = await rehash(svc, d);
    checked++;
    bytes += got?.size ?? 0;
    const rows = await svc.meta.files.byDigest(d);
    if (got && got.digest === d) continue;
    if (!got && rows.length === 0) continue; // a blob row for an object already gone: gc's business
    const finding: VerifyFinding = { digest: d, problem: got ? 'corrupt' : 'missing', rows: rows.map((r) => ({ repo: r.repo, path: r.path, source: r.source })) };
    findings.push(finding);
    if (o.repair) await repair(svc, finding, rows, !!got);
  }
  return { checked, bytes, findings, repaired: !!o.repair };
}

async function repair(svc: Services, finding: VerifyFinding, rows: FileRec[], present: boolean): Promise<void> {
  if (present) await quarantineBlob(svc, finding.digest); // also drops remote rows
  for (const [i, row] of rows.entries()) {
    const out = finding.rows[i];
    if (row.source === 'local') {
      await svc.meta.files.remove(row.repo, row.path);
      out.repair = 'dropped';
      continue;
    }
    await svc.meta.files.remove(row.repo, row.path);
    const repo = await svc.repos.get(row.repo);
    if (repo?.kind === 'remote' && repo.format === 'generic') {
      try {
        const served = await resolveFile(svc, repo, { path: row.path });
        if (served.body) await pipeline(served.body, new Writable({ write: (_c, _e, cb) => cb() }));
        out.repair = 'refetched';
      } catch (err) {
        svc.log.warn({ repo: row.repo, path: row.path, err: (err as Error).message }, 'refetch failed');
        out.repair = 'refetch-failed-dropped';
      }
    } else {
      out.repair = 'dropped';
    }
  }
}
