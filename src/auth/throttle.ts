/**
 * Failed logins by client address: after `slowAfter` failures within `windowMs` each further
 * failure is answered later (doubling, at most 2 s); after `maxFailures` the address is refused
 * with 429 until its oldest counted failure leaves the window. Per process: each instance keeps its
 * own count (a guesser spread over N instances gets N times the budget, still bounded).
 */
export class LoginThrottle {
  private readonly fails = new Map<string, number[]>();

  constructor(private readonly slowAfter: number, private readonly maxFailures: number, private readonly windowMs: number) {}

  private recent(addr: string, now = Date.now()): number[] {
    const list = (this.fails.get(addr) ?? []).filter((t) => now - t < this.windowMs);
    if (list.length) this.fails.set(addr, list);
    else this.fails.delete(addr);
    return list;
  }

  /** Seconds until `addr` may try again; 0 when it may now. */
  retryAfter(addr: string): number {
    if (this.maxFailures <= 0) return 0;
    const list = this.recent(addr);
    if (list.length < this.maxFailures) return 0;
    return Math.max(1, Math.ceil((list[list.length - this.maxFailures] + this.windowMs - Date.now()) / 1000));
  }

  /** Counts a failure; returns how long to hold the answer back (ms). */
  failed(addr: string): number {
    const list = this.recent(addr);
    list.push(Date.now());
    this.fails.set(addr, list);
    if (this.fails.size > 100_000) this.fails.clear(); // a flood of addresses must not grow memory without bound
    const over = list.length - this.slowAfter;
    return over > 0 ? Math.min(2000, 100 * 2 ** (over - 1)) : 0;
  }
}
