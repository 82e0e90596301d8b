import type { FileRec, MetaStore } from './types.js';

/**
 * A short-lived cache of file rows in front of any MetaStore: the hot path of
 * every download is one row lookup, which costs more than sending a small file.
 * Rows written or removed through this store are invalidated at once; changes
 * made by other processes (gc, another instance) show within `ttlMs`. Only
 * found rows are cached, so a miss always asks the database (a fill's re-check
 * sees another instance's row).
 */
export function withFileCache(inner: MetaStore, ttlMs = 1000, maxEntries = 50_000): MetaStore {
  const cache = new Map<string, { rec: FileRec; at: number }>();
  const key = (repo: string, path: string) => `${repo}\0${path}`;
  const forgetRepo = (repo: string) => {
    for (const k of cache.keys()) if (k.startsWith(`${repo}\0`)) cache.delete(k);
  };

  // Inside a transaction reads go to the database (a decision made there must see the truth);
  // writes still invalidate.
  const wrap = (m: MetaStore, inTx = false): MetaStore => ({
    ...m,
    tx: (fn, o) => m.tx((txm) => fn(wrap(txm, true)), o),
    files: {
      ...m.files,
      async get(repo, path) {
        if (inTx) return m.files.get(repo, path);
        const k = key(repo, path);
        const hit = cache.get(k);
        if (hit && Date.now() - hit.at < ttlMs) return hit.rec;
        const rec = await m.files.get(repo, path);
        if (rec) {
          if (cache.size >= maxEntries) cache.clear();
          cache.set(k, { rec, at: Date.now() });
        } else cache.delete(k);
        return rec;
      },
      async put(f) {
        cache.delete(key(f.repo, f.path));
        await m.files.put(f);
        cache.delete(key(f.repo, f.path));
      },
      async remove(repo, path) {
        cache.delete(key(repo, path));
        await m.files.remove(repo, path);
      },
      async removeIf(repo, path, digest, fetchedAt) {
        cache.delete(key(repo, path));
        await m.files.removeIf(repo, path, digest, fetchedAt);
      },
      async removeRepo(repo) {
        forgetRepo(repo);
        await m.files.removeRepo(repo);
      },
    },
    // Methods that read `this` must stay bound to the inner store.
    ping: () => m.ping(),
    close: () => m.close(),
  });
  return wrap(inner);
}
