/** Coordination: in-process by default, Redis when several instances share stores. */
export interface Coordinator {
  /** One `fill` per key at a time; concurrent callers with the same key share its result. */
  singleFlight<T>(key: string, fill: () => Promise<T>): Promise<T>;
  /** Runs `fn` holding a named lock (index regeneration, tag moves). */
  withLock<T>(key: string, fn: () => Promise<T>): Promise<T>;
  /** Health: throws when the shared backend does not answer. */
  ping?(): Promise<void>;
  close?(): Promise<void>;
}
