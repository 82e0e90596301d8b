import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';
import { uploadForm } from './clients.js';
import { makeZip } from '../../helpers/zip.js';

let srv: TestServer;

beforeAll(async () => {
  srv = await startServer();
  await srv.addRepo({ name: 'py', format: 'pypi', kind: 'local' });
});
afterAll(() => srv.close());

const zip = (entries: Record<string, string | Buffer>, lie = false) => makeZip(entries, { lie });

function wheel(version: string, extra: Record<string, string>, metadataTail: string | Buffer = '', lie = false): { filename: string; bytes: Buffer } {
  return {
    filename: `evil_pkg-${version}-py3-none-any.whl`,
    bytes: zip({
      'evil_pkg/__init__.py': '',
      [`evil_pkg-${version}.dist-info/METADATA`]: Buffer.concat([Buffer.from(`Metadata-Version: 2.1\nName: evil-pkg\nVersion: ${version}\n`), Buffer.from(metadataTail)]),
      ...extra,
    }, lie),
  };
}

function upload(f: { filename: string; bytes: Buffer }, version: string) {
  const sha = createHash('sha256').update(f.bytes).digest('hex');
  const form = uploadForm(f, { ':action': 'file_upload', protocol_version: '1', name: 'evil-pkg', version, filetype: 'bdist_wheel', sha256_digest: sha });
  return fetch(`${srv.url}/py/`, { method: 'POST', body: new Uint8Array(form.body), headers: { 'content-type': form.contentType } });
}

async function rows(): Promise<string[]> {
  const out: string[] = [];
  for await (const f of srv.svc.meta.files.list('py')) out.push(f.path);
  return out.sort();
}

describe('pypi upload: wheels whose names would unpack outside site-packages', () => {
  it('takes a clean wheel (the zip writer here is sound)', async () => {
    const res = await upload(wheel('1.0', {}), '1.0');
    expect(res.status).toBe(200);
  });

  const cases: [string, string][] = [
    ['a ../ name', '../evil.pth'],
    ['a .. inside the name', 'evil_pkg/../../../etc/cron.d/x'],
    ['an absolute name', '/etc/passwd'],
    ['a backslash name', 'evil_pkg\\..\\..\\x.py'],
    ['a drive letter', 'C:/Windows/x.dll'],
  ];
  for (const [what, name] of cases) {
    it(`refuses ${what} with 400 and records nothing`, async () => {
      const before = await rows();
      const res = await upload(wheel('2.0', { [name]: 'boom' }), '2.0');
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: { code: 'BAD_REQUEST', message: expect.stringContaining('is outside the wheel') } });
      expect(await rows()).toEqual(before);
      const page = await (await fetch(`${srv.url}/py/simple/evil-pkg/`)).text();
      expect(page).toContain('evil_pkg-1.0-py3-none-any.whl');
      expect(page).not.toContain('evil_pkg-2.0');
    });
  }

  it('bounds what METADATA inflates to, whatever the zip directory claims', async () => {
    const huge = Buffer.alloc(6 << 20, 0x20); // past limits.metadata_body (4 MiB), a few KiB deflated
    const before = await rows();
    let res = await upload(wheel('3.0', {}, huge), '3.0');
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ error: { code: 'TOO_LARGE', message: 'wheel METADATA is too large' } });
    res = await upload(wheel('3.0', {}, huge, true), '3.0'); // the directory says 100 bytes
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: { code: 'BAD_REQUEST', message: 'invalid wheel: evil_pkg-3.0.dist-info/METADATA does not match its size in the directory' } });
    expect(await rows()).toEqual(before);
  });
});
