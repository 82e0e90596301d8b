import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { MemoryCoordinator } from './memory.js';
import type { Coordinator } from './types.js';

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

export interface RedisCoordinatorOptions {
  /** Key prefix, so several deployments (or tests) can share one Redis. */
  prefix?: string;
  /** Lock lease; renewed every lease/3 while held, so a crashed holder frees it after at most this. */
  leaseMs?: number;
  /** Poll interval while waiting for a lock another holder has. */
  pollMs?: number;
}

/**
 * Shared locks and cross-instance single-flight over Redis.
 *
 * withLock: SET key token NX PX lease, renewed while `fn` runs, released only
 * by its owner (compare-and-delete). Waiters poll with a short backoff, and
 * same-process waiters queue behind each other first so one process never
 * polls twice for the same key.
 *
 * singleFlight: concurrent callers in this process share one promise; the fill
 * itself runs under withLock(`sf:<key>`), so a second instance waits for the
 * first to finish and then runs its own fill, which re-checks the metadata
 * store (see repos/remote.ts fetchIntoCache) and finds the row already there.
 */
export class RedisCoordinator implements Coordinator {
  /** Same-process callers share flights and queue for locks here before touching Redis. */
  private readonly inProcess = new MemoryCoordinator();
  private readonly prefix: string;
  private readonly leaseMs: number;
  private readonly pollMs: number;

  private constructor(private readonly redis: Redis, o: RedisCoordinatorOptions) {
    this.prefix = o.prefix ?? 'artifactapi:';
    this.leaseMs = o.leaseMs ?? 30_000;
    this.pollMs = o.pollMs ?? 25;
  }

  static async open(url: string, o: RedisCoordinatorOptions = {}): Promise<RedisCoordinator> {
    const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 3, enableOfflineQueue: true });
    redis.on('error', () => {}); // reconnects by itself; commands fail and surface where they are used
    await redis.connect();
    await redis.ping();
    return new RedisCoordinator(redis, o);
  }

  singleFlight<T>(key: string, fill: () => Promise<T>): Promise<T> {
    return this.inProcess.singleFlight(key, () => this.withLock(`sf:${key}`, fill));
  }

  /** In-process queue first (cheap, fair), then the distributed lock. */
  withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.inProcess.withLock(key, () => this.withRedisLock(key, fn));
  }

  private async withRedisLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const k = `${this.prefix}lock:${key}`;
    const token = randomUUID();
    let wait = this.pollMs;
    while ((await this.redis.set(k, token, 'PX', this.leaseMs, 'NX')) !== 'OK') {
      await sleep(wait);
      wait = Math.min(wait * 2, 250);
    }
    const renew = setInterval(() => {
      this.redis.eval(RENEW, 1, k, token, String(this.leaseMs)).catch(() => {});
    }, Math.max(Math.floor(this.leaseMs / 3), 10));
    renew.unref();
    try {
      return await fn();
    } finally {
      clearInterval(renew);
      await this.redis.eval(RELEASE, 1, k, token).catch(() => {});
    }
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
