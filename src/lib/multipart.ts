import { tryDecode } from './decode.js';
import { AppError } from './errors.js';

/**
 * A small streaming multipart/form-data parser (RFC 7578). Parts come out one
 * at a time; a part's body is pulled chunk by chunk straight from the request,
 * so a file part of any size is never held in memory (at most one network
 * chunk plus a boundary's length). The caller must finish with a part's body
 * (or leave it: the parser skips the rest) before asking for the next part.
 */
export interface Part {
  name: string;
  filename?: string;
  contentType?: string;
  body: AsyncIterable<Buffer>;
}

const MAX_HEADER_BYTES = 16 * 1024;
const MAX_PREAMBLE_BYTES = 64 * 1024;
const CRLF = Buffer.from('\r\n');

export function boundaryOf(contentType: string | undefined): string {
  const m = /^\s*multipart\/form-data\s*;(.*)$/i.exec(contentType ?? '');
  const b = m ? /(?:^|;)\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(m[1]) : null;
  const boundary = b?.[1] ?? b?.[2];
  if (!boundary || boundary.length > 200) throw new AppError('BAD_REQUEST', 'expected a multipart/form-data body with a boundary');
  return boundary;
}

class Reader {
  buf: Buffer = CRLF; // so the first boundary matches the same CRLF--boundary delimiter as the rest
  private eof = false;
  private readonly it: AsyncIterator<Buffer>;
  constructor(src: AsyncIterable<Buffer>) {
    this.it = src[Symbol.asyncIterator]();
  }
  async more(): Promise<boolean> {
    if (this.eof) return false;
    const r = await this.it.next();
    if (r.done) {
      this.eof = true;
      return false;
    }
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    return true;
  }
  async need(n: number): Promise<void> {
    while (this.buf.length < n) if (!(await this.more())) throw truncated();
  }
  async close(): Promise<void> {
    await this.it.return?.();
  }
}

function truncated(): AppError {
  return new AppError('BAD_REQUEST', 'multipart body ended early');
}

export async function* parseMultipart(src: AsyncIterable<Buffer>, boundary: string): AsyncGenerator<Part> {
  const r = new Reader(src);
  const delim = Buffer.from(`\r\n--${boundary}`);
  const keep = delim.length - 1;

  /** Next chunk of the current part's body, or null once its closing delimiter is consumed. */
  let inBody = false;
  const bodyChunk = async (): Promise<Buffer | null> => {
    for (;;) {
      if (!inBody) return null;
      const idx = r.buf.indexOf(delim);
      if (idx >= 0) {
        const out = r.buf.subarray(0, idx);
        r.buf = r.buf.subarray(idx + delim.length);
        inBody = false;
        if (out.length) return out;
        return null;
      }
      if (r.buf.length > keep) {
        // Everything but a possible delimiter prefix at the end is body.
        const out = r.buf.subarray(0, r.buf.length - keep);
        r.buf = r.buf.subarray(r.buf.length - keep);
        return out;
      }
      if (!(await r.more())) throw truncated();
    }
  };

  try {
    // Preamble up to the first delimiter.
    for (;;) {
      const idx = r.buf.indexOf(delim);
      if (idx >= 0) {
        r.buf = r.buf.subarray(idx + delim.length);
        break;
      }
      if (r.buf.length > MAX_PREAMBLE_BYTES) throw new AppError('BAD_REQUEST', 'multipart boundary not found');
      if (!(await r.more())) throw new AppError('BAD_REQUEST', 'multipart boundary not found');
    }
    for (;;) {
      // After a delimiter: `--` ends the body, else optional whitespace and CRLF.
      await r.need(2);
      if (r.buf[0] === 0x2d && r.buf[1] === 0x2d) return;
      for (;;) {
        let i = 0;
        while (i < r.buf.length && (r.buf[i] === 0x20 || r.buf[i] === 0x09)) i++;
        if (r.buf.length >= i + 2) {
          if (r.buf[i] !== 0x0d || r.buf[i + 1] !== 0x0a) throw new AppError('BAD_REQUEST', 'malformed multipart delimiter');
          r.buf = r.buf.subarray(i + 2);
          break;
        }
        if (i > 256 || !(await r.more())) throw truncated();
      }
      // Part headers.
      let headerBlock: string;
      for (;;) {
        if (r.buf.length >= 2 && r.buf[0] === 0x0d && r.buf[1] === 0x0a) {
          headerBlock = '';
          r.buf = r.buf.subarray(2);
          break;
        }
        const end = r.buf.indexOf('\r\n\r\n');
        if (end >= 0) {
          headerBlock = r.buf.subarray(0, end).toString('utf8');
          r.buf = r.buf.subarray(end + 4);
          break;
        }
        if (r.buf.length > MAX_HEADER_BYTES) throw new AppError('BAD_REQUEST', 'multipart part headers too large');
        if (!(await r.more())) throw truncated();
      }
      const headers = parseHeaders(headerBlock);
      const disp = parseDisposition(headers['content-disposition'] ?? '');
      if (disp.name === undefined) throw new AppError('BAD_REQUEST', 'multipart part without a name');
      inBody = true;
      const body: AsyncIterable<Buffer> = {
        async *[Symbol.asyncIterator]() {
          for (let c = await bodyChunk(); c; c = await bodyChunk()) yield c;
        },
      };
      yield { name: disp.name, filename: disp.filename, contentType: headers['content-type'], body };
      while (inBody) await bodyChunk(); // skip whatever the consumer left
    }
  } finally {
    await r.close();
  }
}

function parseHeaders(block: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of block.split(/\r\n(?![ \t])/)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    out[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).replace(/\r\n[ \t]+/g, ' ').trim();
  }
  return out;
}

/** `form-data; name="content"; filename="x.whl"` (quoted strings with backslash escapes, or tokens). */
export function parseDisposition(v: string): { name?: string; filename?: string } {
  const out: Record<string, string> = {};
  const re = /;\s*([A-Za-z0-9_*.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/g;
  for (let m = re.exec(v); m; m = re.exec(v)) {
    const key = m[1].toLowerCase();
    out[key] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3];
  }
  let filename = out.filename;
  const ext = out['filename*'];
  if (ext) {
    const e = /^utf-8''(.*)$/i.exec(ext);
    if (e) {
      filename = tryDecode(e[1]) ?? filename; // malformed: keep the plain filename
    }
  }
  return { name: out.name, filename };
}
