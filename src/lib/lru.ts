/** A least-recently-used map bounded by total bytes and entry count; an entry over `maxEntryBytes` (default: a quarter of the budget) is not kept. */
export class Lru<V> {
  private readonly map = new Map<string, { v: V; bytes: number }>();
  private total = 0;
  constructor(private readonly maxBytes: number, private readonly maxEntries = 10_000, private readonly maxEntryBytes = maxBytes / 4) {}

  get(k: string): V | undefined {
    const e = this.map.get(k);
    if (!e) return undefined;
    this.map.delete(k);
    this.map.set(k, e);
    return e.v;
  }

  set(k: string, v: V, bytes: number): void {
    this.delete(k);
    if (bytes > this.maxEntryBytes) return;
    this.map.set(k, { v, bytes });
    this.total += bytes;
    for (const [key, e] of this.map) {
      if (this.total <= this.maxBytes && this.map.size <= this.maxEntries) break;
      this.map.delete(key);
      this.total -= e.bytes;
    }
  }

  get size(): number {
    return this.map.size;
  }

  /** Drops every entry whose key starts with `prefix` (a scan: for rare events). */
  deletePrefix(prefix: string): void {
    for (const k of [...this.map.keys()]) if (k.startsWith(prefix)) this.delete(k);
  }

  delete(k: string): void {
    const old = this.map.get(k);
    if (old) {
      this.total -= old.bytes;
      this.map.delete(k);
    }
  }
}
