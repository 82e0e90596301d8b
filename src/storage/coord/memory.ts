import type { Coordinator } from './types.js';

export class MemoryCoordinator implements Coordinator {
  private readonly flights = new Map<string, Promise<unknown>>();
  private readonly locks = new Map<string, Promise<void>>();

  singleFlight<T>(key: string, fill: () => Promise<T>): Promise<T> {
    const existing = this.flights.get(key);
    if (existing) return existing as Promise<T>;
    const p = fill().finally(() => this.flights.delete(key));
    this.flights.set(key, p);
    return p;
  }

  async withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.locks.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.locks.get(key) === tail) this.locks.delete(key);
    }
  }
}
