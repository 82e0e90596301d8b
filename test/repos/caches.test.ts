import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Caches, Flights } from '../../src/repos/caches.js';
import { PARSING } from '../../src/repos/resolve.js';
import { startServer, type TestServer } from '../helpers/server.js';

/** A promise and the function that settles it. */
function gate<T>(): { p: Promise<T>; open: (v: T) => void } {
  let open!: (v: T) => void;
  const p = new Promise<T>((r) => (open = r));
  return { p, open };
}

describe('Caches: bounded, by name, one set per server', () => {
  it('an lru keeps the bounds its first caller gave; past them the oldest entries go', () => {
    const c = new Caches();
    const lru = c.lru<number>('x', 1000, 3);
    expect(c.lru<number>('x', 10 ** 9, 10 ** 6)).toBe(lru);
    for (let i = 0; i < 10; i++) lru.set(`k${i}`, i, 10);
    expect(lru.size).toBe(3);
    expect([lru.get('k6'), lru.get('k7'), lru.get('k9')]).toEqual([undefined, 7, 9]);
    const bytes = c.lru<number>('y', 100, 1000);
    for (let i = 0; i < 50; i++) bytes.set(`k${i}`, i, 20);
    expect(bytes.size).toBe(5);
  });

  it('flights share running work by key, forget it when it settles, and run unshared past the bound', async () => {
    const f = new Flights<string>(2);
    const g = gate<string>();
    let calls = 0;
    const work = () => { calls++; return g.p; };
    const [p1, p2] = [f.run('a', work), f.run('a', work)];
    expect(p1).toBe(p2);
    expect(calls).toBe(1);
    const other = gate<string>();
    void f.run('b', () => other.p);
    expect(f.size).toBe(2);
    // full: a third key runs, but is not tracked (nor shared)
    const c1 = f.run('c', async () => 'c1');
    const c2 = f.run('c', async () => 'c2');
    expect([await c1, await c2]).toEqual(['c1', 'c2']);
    expect(f.size).toBe(2);
    g.open('done');
    other.open('b');
    expect([await p1, await p2]).toEqual(['done', 'done']);
    expect(f.size).toBe(0);
    // a failure reaches its caller and leaves too
    const failing = f.run('e', async () => { throw new Error('boom'); });
    await expect(failing).rejects.toThrow('boom');
    expect(f.size).toBe(0);
  });

  it('two Caches never share entries', () => {
    const [a, b] = [new Caches(), new Caches()];
    a.lru<number>('x', 1000).set('k', 1, 1);
    expect(b.lru<number>('x', 1000).get('k')).toBeUndefined();
    expect(a.flights('f', 1)).not.toBe(b.flights('f', 1));
  });
});

describe('two servers in one process', () => {
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    [a, b] = await Promise.all([startServer(), startServer()]);
  });
  afterAll(async () => Promise.all([a?.close(), b?.close()]));

  it('each has its own caches, the document parses in flight (repos/resolve.ts) included', async () => {
    expect(a.svc.caches).not.toBe(b.svc.caches);
    const fa = a.svc.caches.flights(PARSING.name, PARSING.max);
    const fb = b.svc.caches.flights(PARSING.name, PARSING.max);
    expect(fa).not.toBe(fb);
    const g = gate<number>();
    const pa = fa.run('repo\0index.yaml\0etag', () => g.p);
    // the same key on the other server is its own work
    expect(await fb.run('repo\0index.yaml\0etag', async () => 2)).toBe(2);
    g.open(1);
    expect(await pa).toBe(1);
  });
});
