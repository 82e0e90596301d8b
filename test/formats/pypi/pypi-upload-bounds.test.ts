import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../helpers/server.js';

/** A twine-shaped multipart body with `fields` (repeats allowed) and an sdist `content` part. */
function form(fields: [string, string][], file: { filename: string; bytes: Buffer }): { body: Buffer; contentType: string } {
  const boundary = `----bounds${Math.random().toString(16).slice(2)}`;
  const parts: Buffer[] = fields.map(([k, v]) => Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="content"; filename="${file.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`));
  parts.push(file.bytes, Buffer.from(`\r\n--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

const base: [string, string][] = [[':action', 'file_upload'], ['protocol_version', '1'], ['name', 'many-fields'], ['version', '1.0'], ['filetype', 'sdist']];

describe('pypi upload form bounds', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startServer();
    await srv.addRepo({ name: 'pl', format: 'pypi', kind: 'local' });
  });
  afterAll(async () => srv?.close());

  it('refuses a form with thousands of fields (413), storing nothing', async () => {
    const junk = Array.from({ length: 5000 }, (_, i): [string, string] => [`f${i}`, '']);
    const f = form([...base, ...junk], { filename: 'many_fields-1.0.tar.gz', bytes: Buffer.from('sdist bytes') });
    const r = await fetch(`${srv.url}/pl/`, { method: 'POST', body: new Uint8Array(f.body), headers: { 'content-type': f.contentType } });
    expect(r.status).toBe(413);
    expect(r.headers.get('connection')).toBe('close'); // the unread rest of the body does not pin the socket
    expect(await r.json()).toEqual({ error: { code: 'TOO_LARGE', message: expect.stringMatching(/form parts/) } });
    const rows = [];
    for await (const rec of srv.svc.meta.files.list('pl')) rows.push(rec);
    expect(rows).toEqual([]);
  });

  it('still takes a form with a couple of hundred classifiers', async () => {
    const classifiers = Array.from({ length: 200 }, (_, i): [string, string] => ['classifiers', `Topic :: Test :: ${i}`]);
    const f = form([...base, ...classifiers], { filename: 'many_fields-1.0.tar.gz', bytes: Buffer.from('sdist bytes') });
    const r = await fetch(`${srv.url}/pl/`, { method: 'POST', body: new Uint8Array(f.body), headers: { 'content-type': f.contentType } });
    expect(r.status, await r.text()).toBe(200);
  });
});
