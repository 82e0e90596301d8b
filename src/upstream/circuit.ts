/** Verdaccio's max_fails/fail_timeout: after N consecutive failures, skip the upstream for a cool-off. */
export class Circuit {
  private fails = new Map<string, { count: number; openUntil: number }>();

  isOpen(key: string): boolean {
    const s = this.fails.get(key);
    return !!s && s.openUntil > Date.now();
  }

  failure(key: string, maxFails: number, coolOffMs: number): void {
    const s = this.fails.get(key) ?? { count: 0, openUntil: 0 };
    s.count++;
    if (s.count >= maxFails) s.openUntil = Date.now() + coolOffMs;
    this.fails.set(key, s);
  }

  success(key: string): void {
    this.fails.delete(key);
  }
}
