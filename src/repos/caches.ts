import { Lru } from '../lib/lru.js';

/**
 * The bounded in-memory caches of one server, held in Services instead of module state (so two
 * servers in one process, as tests run them, never share entries). Each is made on first use
 * with the bounds its owner gives, by name.
 */
export class Caches {
  private readonly lrus = new Map<string, Lru<unknown>>();

  lru<V>(name: string, maxBytes: number, maxEntries?: number, maxEntryBytes?: number): Lru<V> {
    let c = this.lrus.get(name);
    if (!c) this.lrus.set(name, (c = new Lru<unknown>(maxBytes, maxEntries, maxEntryBytes)));
    return c as Lru<V>;
  }
}
