import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { negotiate, parseProjectPage } from '../../../src/formats/pypi/index-doc.js';
import { parseMultipart } from '../../../src/lib/multipart.js';
import { canonicalVersion, normalizeName, parseDistFilename } from '../../../src/formats/pypi/names.js';

async function* chunked(buf: Buffer, sizes: () => number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; ) {
    const n = Math.max(1, sizes());
    yield buf.subarray(i, i + n);
    i += n;
  }
}

async function collect(body: Buffer, boundary: string, sizes: () => number) {
  const out: { name: string; filename?: string; data: Buffer }[] = [];
  for await (const p of parseMultipart(chunked(body, sizes), boundary)) {
    const chunks: Buffer[] = [];
    for await (const c of p.body) chunks.push(c);
    out.push({ name: p.name, filename: p.filename, data: Buffer.concat(chunks) });
  }
  return out;
}

describe('pypi multipart parser', () => {
  const boundary = 'xYzZY';
  // Content that contains near-misses of the delimiter.
  const file = Buffer.concat([randomBytes(5000), Buffer.from(`\r\n--${boundary.slice(0, 3)}\r\n--xYzZ`), randomBytes(3000)]);
  const body = Buffer.concat([
    Buffer.from(`preamble\r\n--${boundary}\r\nContent-Disposition: form-data; name=":action"\r\n\r\nfile_upload\r\n`),
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="empty"\r\n\r\n\r\n`),
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="content"; filename="a \\"b\\".whl"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    file,
    Buffer.from(`\r\n--${boundary}--\r\nepilogue`),
  ]);

  it('splits parts correctly whatever the chunk boundaries', async () => {
    for (const sizes of [() => 1, () => 7, () => 4096, () => 1 + Math.floor(Math.random() * 50), () => body.length]) {
      const parts = await collect(body, boundary, sizes);
      expect(parts.map((p) => p.name)).toEqual([':action', 'empty', 'content']);
      expect(parts[0].data.toString()).toBe('file_upload');
      expect(parts[1].data.length).toBe(0);
      expect(parts[2].filename).toBe('a "b".whl');
      expect(parts[2].data.equals(file)).toBe(true);
    }
  });

  it('skips a part the consumer leaves unread', async () => {
    const names: string[] = [];
    for await (const p of parseMultipart(chunked(body, () => 13), boundary)) names.push(p.name);
    expect(names).toEqual([':action', 'empty', 'content']);
  });

  it('refuses a body cut short', async () => {
    await expect(collect(body.subarray(0, body.length - 30), boundary, () => 100)).rejects.toThrow(/ended early/);
  });

  it('streams a large file part with a bounded buffer', async () => {
    const big = randomBytes(8 * 1024 * 1024);
    const b = Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="content"; filename="x.tar.gz"\r\n\r\n`), big, Buffer.from(`\r\n--${boundary}--\r\n`)]);
    let maxChunk = 0;
    const hash = createHash('sha256');
    for await (const p of parseMultipart(chunked(b, () => 65536), boundary)) {
      for await (const c of p.body) {
        maxChunk = Math.max(maxChunk, c.length);
        hash.update(c);
      }
    }
    expect(hash.digest('hex')).toBe(createHash('sha256').update(big).digest('hex'));
    expect(maxChunk).toBeLessThanOrEqual(65536 + boundary.length + 6);
  });
});

describe('pypi names', () => {
  it('normalises per PEP 503', () => {
    expect(normalizeName('Foo_Bar')).toBe('foo-bar');
    expect(normalizeName('foo.__-bar')).toBe('foo-bar');
    expect(normalizeName('DEMO.app')).toBe('demo-app');
  });
  it('compares versions per PEP 440', () => {
    expect(canonicalVersion('1.0.0')).toBe(canonicalVersion('1'));
    expect(canonicalVersion('1.0-RC1')).toBe('1rc1');
    expect(canonicalVersion('v2.0.post1.dev3')).toBe('2.post1.dev3');
    expect(canonicalVersion('1.0')).not.toBe(canonicalVersion('1.0.1'));
  });
  it('reads name and version from wheel and sdist filenames', () => {
    expect(parseDistFilename('Foo_Bar-1.0-py3-none-any.whl')).toMatchObject({ kind: 'wheel', name: 'Foo_Bar', version: '1.0' });
    expect(parseDistFilename('foo-1.0-1-cp311-cp311-manylinux_2_17_x86_64.whl')).toMatchObject({ name: 'foo', version: '1.0' });
    expect(parseDistFilename('foo-bar-2.0.tar.gz', { name: 'foo-bar', version: '2.0' })).toMatchObject({ kind: 'sdist', name: 'foo-bar', version: '2.0' });
    expect(parseDistFilename('foo_bar-2.0.zip')).toMatchObject({ name: 'foo_bar', version: '2.0' });
    expect(() => parseDistFilename('foo-1.0.exe')).toThrow(/unsupported/);
    expect(() => parseDistFilename('../x-1.0.tar.gz')).toThrow(/invalid filename/);
  });
});

describe('pypi index documents', () => {
  it('negotiates PEP 691 content types', () => {
    expect(negotiate(undefined)).toBe('html');
    expect(negotiate('*/*')).toBe('html');
    expect(negotiate('application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01')).toBe('json');
    expect(negotiate('application/vnd.pypi.simple.v1+html')).toBe('html-v1');
    expect(negotiate('text/html, application/vnd.pypi.simple.v1+json;q=0.5')).toBe('html');
    expect(negotiate('application/vnd.pypi.simple.latest+json')).toBe('json');
  });
  it('parses HTML pages with relative links, entities and attribute variants', () => {
    const html = Buffer.from(`<html><body>
      <a href="../../packages/x/Foo-1.0.tar.gz#sha256=${'a'.repeat(64)}" data-requires-python="&gt;=3.8">Foo-1.0.tar.gz</a>
      <A HREF='https://files.example/y/foo-1.1-py3-none-any.whl#sha256=${'b'.repeat(64)}' data-yanked data-dist-info-metadata="true">foo-1.1-py3-none-any.whl</A>
      <a href="/p/foo-1.2-py3-none-any.whl" data-core-metadata="sha256=${'c'.repeat(64)}" data-yanked="bad &amp; broken">foo-1.2-py3-none-any.whl</a>
    </body></html>`);
    const doc = parseProjectPage(html, 'https://idx.example/simple/foo/', 'Foo');
    expect(doc.name).toBe('foo');
    expect(doc.files).toEqual([
      { filename: 'Foo-1.0.tar.gz', url: 'https://idx.example/packages/x/Foo-1.0.tar.gz', hashes: { sha256: 'a'.repeat(64) }, requiresPython: '>=3.8', metadata: undefined, yanked: undefined },
      { filename: 'foo-1.1-py3-none-any.whl', url: 'https://files.example/y/foo-1.1-py3-none-any.whl', hashes: { sha256: 'b'.repeat(64) }, requiresPython: undefined, metadata: {}, yanked: '' },
      { filename: 'foo-1.2-py3-none-any.whl', url: 'https://idx.example/p/foo-1.2-py3-none-any.whl', hashes: {}, requiresPython: undefined, metadata: { sha256: 'c'.repeat(64) }, yanked: 'bad & broken' },
    ]);
  });
});
