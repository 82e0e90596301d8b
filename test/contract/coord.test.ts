import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryCoordinator } from '../../src/storage/coord/memory.js';
import { RedisCoordinator } from '../../src/storage/coord/redis.js';
import type { Coordinator } from '../../src/storage/coord/types.js';
import { NO_REDIS, REDIS_URL, uniq } from '../helpers/stores.js';

/** One Coordinator contract, run against every adapter. */
interface CoordFactory {
  name: string;
  skip?: string;
  /** `peer()`: a second coordinator sharing state with the first (another instance behind the balancer). */
  open(): Promise<{ coord: Coordinator; peer?: () => Promise<Coordinator>; cleanup(): Promise<void> }>;
}

const factories: CoordFactory[] = [
  {
    name: 'memory',
    async open() {
      return { coord: new MemoryCoordinator(), cleanup: async () => {} };
    },
  },
  {
    name: 'redis',
    skip: REDIS_URL ? undefined : NO_REDIS,
    async open() {
      const prefix = `${uniq('test')}:`;
      const all: Coordinator[] = [];
      const make = async () => { const c = await RedisCoordinator.open(REDIS_URL, { prefix, leaseMs: 600 }); all.push(c); return c; };
      return { coord: await make(), peer: make, cleanup: async () => { for (const c of all) await c.close?.(); } };
    },
  },
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const f of factories) {
  describe.skipIf(!!f.skip)(`Coordinator contract: ${f.name}${f.skip ? ` (skipped: ${f.skip})` : ''}`, () => {
    let coord: Coordinator;
    let peer: (() => Promise<Coordinator>) | undefined;
    let cleanup: () => Promise<void>;
    beforeEach(async () => ({ coord, peer, cleanup } = await f.open()));
    afterEach(async () => cleanup());

    it('singleFlight: concurrent callers share one fill and its result', async () => {
      let fills = 0;
      const fill = async () => { fills++; await sleep(50); return { n: fills }; };
      const results = await Promise.all(Array.from({ length: 20 }, () => coord.singleFlight('k', fill)));
      expect(fills).toBe(1);
      for (const r of results) expect(r).toBe(results[0]);
      // Once settled, the key is free again.
      await coord.singleFlight('k', fill);
      expect(fills).toBe(2);
    });

    it('singleFlight: keys are independent and errors reach every waiter, then clear', async () => {
      let a = 0;
      let b = 0;
      await Promise.all([coord.singleFlight('a', async () => { a++; await sleep(20); }), coord.singleFlight('b', async () => { b++; await sleep(20); })]);
      expect([a, b]).toEqual([1, 1]);
      const failing = () => coord.singleFlight('bad', async () => { await sleep(20); throw new Error('upstream down'); });
      const settled = await Promise.allSettled([failing(), failing(), failing()]);
      expect(settled.every((s) => s.status === 'rejected' && (s.reason as Error).message === 'upstream down')).toBe(true);
      expect(await coord.singleFlight('bad', async () => 'ok')).toBe('ok');
    });

    it('withLock: holders of the same key never overlap; other keys do not wait', async () => {
      let inside = 0;
      let max = 0;
      const log: string[] = [];
      const hold = (n: number) => coord.withLock('L', async () => {
        inside++; max = Math.max(max, inside); log.push(`in${n}`);
        await sleep(100);
        inside--; log.push(`out${n}`);
        return n;
      });
      const t0 = Date.now();
      const other = coord.withLock('other', async () => Date.now() - t0);
      const results = await Promise.all([hold(1), hold(2), hold(3), hold(4)]);
      expect(results).toEqual([1, 2, 3, 4]);
      expect(max).toBe(1);
      expect(await other).toBeLessThan(250); // the four holders of 'L' take >= 400 ms in a row
    });

    it('withLock: released after an error', async () => {
      await expect(coord.withLock('E', async () => { throw new Error('x'); })).rejects.toThrow('x');
      expect(await coord.withLock('E', async () => 'free')).toBe('free');
    });

    it('withLock excludes another instance, and the lease outlives a slow holder', async (ctx) => {
      if (!peer) return ctx.skip();
      const other = await peer();
      let inside = 0;
      let max = 0;
      const hold = (c: Coordinator, ms: number) => c.withLock('X', async () => {
        inside++; max = Math.max(max, inside);
        await sleep(ms);
        inside--;
      });
      // 1500 ms > the 600 ms lease: renewal must keep the other instance out.
      await Promise.all([hold(coord, 1500), sleep(30).then(() => hold(other, 10)), hold(other, 10), hold(coord, 10)]);
      expect(max).toBe(1);
    });

    it('singleFlight across instances: the second waits for the first fill, then runs its own re-check', async (ctx) => {
      if (!peer) return ctx.skip();
      const other = await peer();
      let cached: string | null = null; // stands in for the shared metadata row
      let upstream = 0;
      const fill = async () => {
        if (cached) return cached; // fetchIntoCache re-checks meta first
        upstream++;
        await sleep(100);
        cached = 'body';
        return cached;
      };
      const calls = Array.from({ length: 20 }, (_, i) => (i % 2 ? coord : other).singleFlight('miss', fill));
      expect(await Promise.all(calls)).toEqual(Array(20).fill('body'));
      expect(upstream).toBe(1);
    });
  });
}
