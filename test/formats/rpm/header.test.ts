import { rmSync } from 'node:fs';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect } from '../../../src/lib/streams.js';
import { RpmHeaderTap } from '../../../src/formats/rpm/header.js';
import { buildFixtureRpms, HAVE_RPMBUILD, tempDir } from './rpms.js';

let dir: string;
let rpms: Map<string, Buffer>;
beforeAll(() => {
  dir = tempDir();
  if (HAVE_RPMBUILD) rpms = buildFixtureRpms(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function chunks(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

async function tap(parts: Buffer[]) {
  const t = new RpmHeaderTap();
  const body = await collect(Readable.from(parts).pipe(t));
  return { meta: t.meta, body };
}

describe.skipIf(!HAVE_RPMBUILD)('RpmHeaderTap', () => {
  it('parses the same header whatever the chunking, and passes every byte through unchanged', async () => {
    const rpm = rpms.get('hello-tool-2.0-1.noarch.rpm')!;
    const whole = await tap([rpm]);
    expect(whole.meta).toMatchObject({ name: 'hello-tool', version: '2.0', release: '1', epoch: '0', arch: 'noarch' });
    for (const size of [1, 7, 95, 97, 4096]) {
      const got = await tap(chunks(rpm, size));
      expect(got.meta, `chunks of ${size}`).toEqual(whole.meta);
      expect(got.body.equals(rpm), `chunks of ${size}`).toBe(true);
    }
  });
});
