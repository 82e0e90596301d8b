import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { openStores } from '../../src/storage/open.js';

const dir = mkdtempSync(join(tmpdir(), 'artifactapi-open-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('database.url is a secret', () => {
  it('given as url_file, it is read from the file; an unusable one is refused without its password', async () => {
    const f = join(dir, 'db-url');
    writeFileSync(f, 'mysql://app:hunter2@db.example/app\n');
    const config = loadConfig({ noDefaultFile: true, env: {}, file: (() => {
      const t = join(dir, 'c.toml');
      writeFileSync(t, `data_dir = "${dir}"\n[database]\nurl_file = "${f}"\n`);
      return t;
    })() });
    expect(config.database.url).toBe('mysql://app:hunter2@db.example/app');
    await expect(openStores(config)).rejects.toThrow('database.url: unsupported scheme in "mysql://app:***@db.example/app" (use sqlite:// or postgres://)');
  });
});
