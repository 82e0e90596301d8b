import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/lib/digest.js';
import { hashGoMod, hashZip } from '../../src/lib/dirhash.js';
import { spool } from '../../src/lib/spool.js';
import { openZip } from '../../src/lib/zip.js';
import { FsBlobStore } from '../../src/storage/blob/fs.js';
import { which } from '../helpers/which.js';
import { makeZip } from '../helpers/zip.js';

let dir: string;
let store: FsBlobStore;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'zip-'));
  store = await FsBlobStore.open(join(dir, 'cas'));
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function put(body: Buffer): Promise<{ digest: Digest; size: number }> {
  const s = await spool(Readable.from([body]), store.tempDir);
  await store.commit({ file: s.path }, s.digest, s.size);
  return { digest: s.digest, size: s.size };
}

const MODULE = 'example.com/zipcheck';
const files = {
  [`${MODULE}@v1.0.0/go.mod`]: `module ${MODULE}\n\ngo 1.19\n`,
  [`${MODULE}@v1.0.0/zipcheck.go`]: 'package zipcheck\n\nfunc Answer() int { return 42 }\n',
  [`${MODULE}@v1.0.0/sub/b.txt`]: 'b'.repeat(70_000),
};

describe('lib/zip', () => {
  it('lists entries with sizes and Unix modes, and streams one back byte for byte', async () => {
    const { digest, size } = await put(makeZip({ ...files, 'link': 'target' }, { modes: { link: 0o120777 } }));
    const zip = await openZip(store, digest, size, 'module zip');
    expect(zip.entries.map((e) => [e.name, e.size, e.isSymlink])).toEqual([
      ...Object.entries(files).map(([n, t]) => [n, Buffer.byteLength(t), false]),
      ['link', 6, true],
    ]);
    const big = zip.entries[2];
    expect((await zip.read(big, 100_000)).toString()).toBe(files[`${MODULE}@v1.0.0/sub/b.txt`]);
  });

  it('refuses what a directory lies about, entries over the bound, and non-zips, with the archive named', async () => {
    const lying = await put(makeZip(files, { lie: true }));
    const zip = await openZip(store, lying.digest, lying.size, 'module zip');
    await expect(zip.read(zip.entries[0], 1 << 20)).rejects.toThrow(`invalid module zip: ${MODULE}@v1.0.0/go.mod does not match its size in the directory`);
    const sound = await put(makeZip(files));
    const z2 = await openZip(store, sound.digest, sound.size, 'module zip');
    await expect(z2.read(z2.entries[2], 1000)).rejects.toThrow(`module zip: ${MODULE}@v1.0.0/sub/b.txt is larger than 1000 bytes`);
    await expect(openZip(store, sound.digest, sound.size, 'module zip', { maxEntries: 2 })).rejects.toThrow('module zip: more than 2 entries');
    const text = await put(Buffer.from('not a zip at all, but long enough to look'));
    await expect(openZip(store, text.digest, text.size, 'module zip')).rejects.toThrow('invalid module zip: not a zip file (no end of central directory)');
  });
});

describe.skipIf(!which('go'))('lib/dirhash: h1: as the go command computes it', () => {
  it('hashZip and hashGoMod agree with `go mod download -json` over a file:// proxy', async () => {
    const zipBytes = makeZip(files);
    const proxy = join(dir, 'proxy', MODULE, '@v');
    mkdirSync(proxy, { recursive: true });
    writeFileSync(join(proxy, 'list'), 'v1.0.0\n');
    writeFileSync(join(proxy, 'v1.0.0.info'), '{"Version":"v1.0.0","Time":"2026-01-01T00:00:00Z"}');
    writeFileSync(join(proxy, 'v1.0.0.mod'), files[`${MODULE}@v1.0.0/go.mod`]);
    writeFileSync(join(proxy, 'v1.0.0.zip'), zipBytes);
    const out = execFileSync('go', ['mod', 'download', '-json', `${MODULE}@v1.0.0`], {
      cwd: dir,
      env: {
        PATH: process.env.PATH, HOME: dir, GOPROXY: `file://${join(dir, 'proxy')}`, GOSUMDB: 'off', GONOSUMDB: '*', GOFLAGS: '-mod=mod',
        GOPATH: join(dir, 'gopath'), GOMODCACHE: join(dir, 'modcache'), GOCACHE: join(dir, 'gocache'), GOTOOLCHAIN: 'local',
      },
    }).toString();
    const info = JSON.parse(out) as { Sum: string; GoModSum: string };
    const { digest, size } = await put(zipBytes);
    expect(await hashZip(await openZip(store, digest, size))).toBe(info.Sum);
    expect(await hashGoMod(Buffer.from(files[`${MODULE}@v1.0.0/go.mod`]))).toBe(info.GoModSum);
    expect(info.Sum).toMatch(/^h1:[A-Za-z0-9+/]{43}=$/);
  });
});
