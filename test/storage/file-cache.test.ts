import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { withFileCache } from '../../src/storage/meta/cached.js';
import { SqliteMetaStore } from '../../src/storage/meta/sqlite.js';
import type { FileRec, MetaStore } from '../../src/storage/meta/types.js';

const D1 = `sha256:${'1'.repeat(64)}` as const;
const D2 = `sha256:${'2'.repeat(64)}` as const;
const rec = (digest: FileRec['digest']): FileRec => ({ repo: 'r', path: 'p', digest, size: 1, source: 'local', fetchedAt: 1, lastAccess: 1 });

describe('file-row cache in front of the metadata store', () => {
  let dir: string;
  let other: SqliteMetaStore; // another process on the same database
  let raw: SqliteMetaStore;
  let cached: MetaStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'artifactapi-cache-'));
    raw = SqliteMetaStore.open(join(dir, 'db'));
    other = SqliteMetaStore.open(join(dir, 'db'));
    cached = withFileCache(raw, 200);
  });
  afterEach(async () => {
    await raw.close();
    await other.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('never caches a miss, so a row another process adds is seen at once', async () => {
    expect(await cached.files.get('r', 'p')).toBeNull();
    await other.files.put(rec(D1));
    expect((await cached.files.get('r', 'p'))?.digest).toBe(D1);
  });

  it("shows another process's change within the TTL, and its own writes at once", async () => {
    await other.files.put(rec(D1));
    expect((await cached.files.get('r', 'p'))?.digest).toBe(D1);
    await other.files.put(rec(D2));
    expect((await cached.files.get('r', 'p'))?.digest).toBe(D1); // still cached
    await new Promise((r) => setTimeout(r, 250));
    expect((await cached.files.get('r', 'p'))?.digest).toBe(D2);
    await cached.files.put(rec(D1));
    expect((await cached.files.get('r', 'p'))?.digest).toBe(D1);
    await cached.files.remove('r', 'p');
    expect(await cached.files.get('r', 'p')).toBeNull();
  });

  it('reads inside a transaction go to the database', async () => {
    await other.files.put(rec(D1));
    await cached.files.get('r', 'p');
    await other.files.remove('r', 'p');
    expect(await cached.tx((m) => m.files.get('r', 'p'))).toBeNull();
  });
});
