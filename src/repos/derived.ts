import { sha256 } from '../lib/digest.js';
import { ingestBuffer } from '../storage/ingest.js';
import type { FileRec, RepoDef } from '../storage/meta/types.js';
import { writeLocalRow } from './local.js';
import type { Services } from './services.js';
import type { Served } from './types.js';

/** A document a format derives from a local repo's rows (helm index.yaml; rpm repodata, APKINDEX). */
export interface DerivedDoc {
  /** Its path among the repo's files. */
  path: string;
  contentType: string;
  /**
   * The whole document from the repo's rows: the same rows give the same bytes, so ETag and 304 hold
   * between writes. With `parts`, a set of documents: the parts are stored first, then the document
   * that names them (rpm's repomd.xml), so its row is the one switch. Parts should have names that
   * change with their content, so readers of the previous generation keep finding theirs.
   */
  render(svc: Services, repo: RepoDef): Promise<Buffer | { body: Buffer; parts: DerivedPart[] }>;
}

export interface DerivedPart {
  path: string;
  contentType: string;
  body: Buffer;
}

interface Runs {
  running?: Promise<FileRec>;
  queued?: Promise<FileRec>;
}

/**
 * Documents derived on write. After a write or delete the format calls `refresh`; the document is
 * rendered from the rows under a per-repo lock (shared across instances through the coordinator)
 * and stored as blob + row, so the switch is one row update and a reader never sees a partial
 * set. Writes in a burst share regenerations: one that arrives while a render runs waits for the
 * next, which starts after the current one and so sees every write made before it.
 */
export class DerivedDocs {
  private readonly runs = new Map<string, Runs>();

  refresh(svc: Services, repo: RepoDef, doc: DerivedDoc): Promise<FileRec> {
    const key = `${repo.name}\0${doc.path}`;
    let runs = this.runs.get(key);
    if (!runs) this.runs.set(key, (runs = {}));
    const r = runs;
    if (r.queued) return r.queued;
    const start = (): Promise<FileRec> => {
      const p = this.regenerate(svc, repo, doc).finally(() => {
        if (r.running === p) r.running = undefined;
        if (!r.running && !r.queued) this.runs.delete(key);
      });
      r.running = p;
      return p;
    };
    if (!r.running) return start();
    const queued = r.running.catch(() => undefined).then(() => {
      r.queued = undefined;
      return start();
    });
    r.queued = queued;
    return queued;
  }

  /** The stored document, derived now if the repo never had one (a new, empty repo). */
  async current(svc: Services, repo: RepoDef, doc: DerivedDoc): Promise<FileRec> {
    return (await svc.meta.files.get(repo.name, doc.path)) ?? this.refresh(svc, repo, doc);
  }

  private regenerate(svc: Services, repo: RepoDef, doc: DerivedDoc): Promise<FileRec> {
    return svc.coord.withLock(`derived:${repo.name}:${doc.path}`, async () => {
      const rendered = await doc.render(svc, repo);
      const { body, parts } = Buffer.isBuffer(rendered) ? { body: rendered, parts: [] } : rendered;
      const current = await svc.meta.files.get(repo.name, doc.path);
      if (current && current.digest === sha256(body)) return current;
      for (const part of parts) {
        const had = await svc.meta.files.get(repo.name, part.path);
        if (had?.digest === sha256(part.body)) continue;
        await ingestBuffer(svc, part.body, (m, w) => writeLocalRow(m, repo, part.path, w.digest, w.size, { contentType: part.contentType, meta: { kind: 'derived' } }));
      }
      let rec!: FileRec;
      await ingestBuffer(svc, body, async (m, w) => {
        rec = await writeLocalRow(m, repo, doc.path, w.digest, w.size, { contentType: doc.contentType, meta: { kind: 'derived' } });
      });
      return rec;
    });
  }
}

/**
 * A local repo's stored derived document as a served file (its digest as ETag, Range, 304), derived
 * now if the repo never had one; null for remote and virtual repos, whose format renders theirs.
 */
export async function storedDerived(svc: Services, repo: RepoDef, doc: DerivedDoc): Promise<Served | null> {
  if (repo.kind !== 'local') return null;
  const rec = await svc.derived.current(svc, repo, doc);
  return { rec, source: 'local', servedBy: repo.name, size: rec.size };
}
