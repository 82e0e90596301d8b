import type { GrantRec, IdentityStore, TokenRec, UserRec } from '../storage/meta/identities.js';

/** Rows are dropped after this even when the epoch stays put; the epoch is what makes a revoke immediate. */
const MAX_AGE = 60_000;
const MAX_ENTRIES = 10_000;

/** The identity store's rows as one request sees them. */
export interface IdentityView {
  user(name: string): Promise<UserRec | null>;
  tokenByHash(hash: string): Promise<TokenRec | null>;
  token(id: string): Promise<TokenRec | null>;
  grants(subject: string): Promise<GrantRec[]>;
}

/** Rows read while the store's epoch was `epoch`. Promises, so concurrent misses share one read. */
class Generation {
  private readonly rows = new Map<string, Promise<unknown>>();
  readonly at = Date.now();
  constructor(readonly epoch: number) {}

  get<T>(key: string, load: () => Promise<T>): Promise<T> {
    const known = this.rows.get(key);
    if (known) return known as Promise<T>;
    if (this.rows.size >= MAX_ENTRIES) this.rows.clear();
    const p = load();
    this.rows.set(key, p);
    p.catch(() => this.rows.get(key) === p && this.rows.delete(key));
    return p;
  }
}

/**
 * A per-instance cache of users, tokens and grants that is never stale: every change to those
 * tables bumps one counter in the same transaction (migration 6), and each `view()` first reads that
 * counter from the store, starting the read after the call. A revoke committed on any instance
 * before a request arrived is therefore seen by that request, while the request itself reads one
 * integer instead of three or four rows. Callers share one counter read: the read starts on the
 * next turn of the event loop, so every caller that joins it arrived before it began. Under load
 * that is one read for a whole batch of requests, not one each.
 */
export class IdentityCache {
  private gen = new Generation(Number.NaN);
  private next?: Promise<number>;

  constructor(private readonly store: IdentityStore) {}

  async view(): Promise<IdentityView> {
    const epoch = await this.epoch();
    // Rows loaded from here on were read after this epoch was; an older epoch that arrives late
    // (reads overlap on Postgres) only costs a refill.
    if (epoch !== this.gen.epoch || Date.now() - this.gen.at > MAX_AGE) this.gen = new Generation(epoch);
    const g = this.gen;
    const s = this.store;
    return {
      user: (name) => g.get(`u\0${name}`, () => s.users.get(name)),
      tokenByHash: (hash) => g.get(`h\0${hash}`, () => s.tokens.byHash(hash)),
      token: (id) => g.get(`t\0${id}`, () => s.tokens.get(id)),
      grants: (subject) => g.get(`g\0${subject}`, () => s.grants.list(subject)),
    };
  }

  private epoch(): Promise<number> {
    return (this.next ??= new Promise<void>((started) => setImmediate(started)).then(() => {
      this.next = undefined;
      return this.store.epoch();
    }));
  }
}
