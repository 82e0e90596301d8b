import { Lru } from '../lib/lru.js';

/**
 * The bounded in-memory caches of one server, held in Services instead of module state (so two
 * servers in one process, as tests run them, never share entries). Each is made on first use
 * with the bounds its owner gives, by name; the first caller's bounds stay.
 */
export class Caches {
  private readonly lrus = new Map<string, Lru<unknown>>();
  private readonly flightSets = new Map<string, Flights<unknown>>();

  lru<V>(name: string, maxBytes: number, maxEntries?: number, maxEntryBytes?: number): Lru<V> {
    let c = this.lrus.get(name);
    if (!c) this.lrus.set(name, (c = new Lru<unknown>(maxBytes, maxEntries, maxEntryBytes)));
    return c as Lru<V>;
  }

  /** Work in progress by key that concurrent callers share (Flights), at most `max` keys at once. */
  flights<V>(name: string, max: number): Flights<V> {
    let f = this.flightSets.get(name);
    if (!f) this.flightSets.set(name, (f = new Flights<unknown>(max)));
    return f as Flights<V>;
  }
}

/**
 * In-process single-flight: a caller whose key is already running gets that promise. Entries
 * leave when their work settles; past `max` running keys, more work runs unshared (correct,
 * only not deduplicated), so the map never outgrows the bound.
 */
export class Flights<V> {
  private readonly running = new Map<string, Promise<V>>();
  constructor(private readonly max: number) {}

  run(key: string, work: () => Promise<V>): Promise<V> {
    const hit = this.running.get(key);
    if (hit) return hit;
    if (this.running.size >= this.max) return work();
    const p = work().finally(() => this.running.delete(key));
    this.running.set(key, p);
    return p;
  }

  get size(): number {
    return this.running.size;
  }
}
