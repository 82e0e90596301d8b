import { closeSync, openSync, read } from 'node:fs';
import { Readable } from 'node:stream';
import { EventEmitter } from 'node:events';

/** Bytes one writer is still producing, read by any number of readers from byte 0. */
export interface Growing {
  /** A reader of the whole content from byte 0; null once it is over (read the store instead). */
  reader(): Readable | null;
  /** The content is complete and committed; `rest(pos)` reads the committed copy from `pos` on. */
  finish(rest?: (pos: number) => Promise<Readable>): void;
  fail(err: Error): void;
}

/**
 * A file that one writer is still appending to. Readers stream what is there
 * and wait for more; they end when the writer says it is complete, and fail
 * when it fails. Used so that waiters of a cache fill get bytes while the
 * first download runs.
 *
 * One read descriptor is opened as soon as the file exists and kept until the
 * fill is over and every reader is gone, so the writer may rename the file
 * into the CAS under them.
 */
const BATCH = 256 * 1024;
const BATCH_WAIT_MS = 20;

export class GrowingFile extends EventEmitter implements Growing {
  written = 0;
  done = false;
  error: Error | undefined;
  private fd: number | undefined;
  private readers = 0;
  private closed = false;

  constructor() {
    super();
    this.setMaxListeners(0);
  }

  progress(written: number, path: string): void {
    if (this.fd === undefined && !this.closed) this.fd = openSync(path, 'r');
    this.written = written;
    this.emit('change');
  }
  finish(): void {
    this.done = true;
    this.emit('change');
    this.maybeClose();
  }
  fail(err: Error): void {
    this.error = err;
    this.emit('change');
    this.maybeClose();
  }

  private maybeClose(): void {
    if ((this.done || this.error) && this.readers === 0 && !this.closed) {
      this.closed = true;
      if (this.fd !== undefined) closeSync(this.fd);
      this.fd = undefined;
    }
  }

  /** A reader of the whole file from byte 0, following the writer; null once the fill is over (read the store instead). */
  reader(chunkSize = 1 << 20): Readable | null {
    if (this.closed || this.done) return null;
    this.readers++;
    let pos = 0;
    let waited = false;
    const self = this;
    const waitForChange = () => new Promise<void>((resolve) => self.once('change', resolve));
    const readAt = (fd: number, len: number) => new Promise<Buffer>((resolve, reject) => {
      const buf = Buffer.allocUnsafe(len);
      read(fd, buf, 0, len, pos, (err, n) => (err ? reject(err) : resolve(n === len ? buf : buf.subarray(0, n))));
    });
    return new Readable({
      highWaterMark: chunkSize,
      async read() {
        try {
          for (;;) {
            if (self.error) throw self.error;
            // Until the fill is committed, the last byte is held back: a client never sees a
            // complete body of something that then fails to verify or to be recorded.
            const readable = self.done ? self.written : self.written - 1;
            // While the fill runs, read in batches (many readers of small appends cost a threadpool
            // hop each), except the first bytes, and never wait more than BATCH_WAIT_MS for a batch.
            const avail = readable - pos;
            if (self.fd !== undefined && avail > 0 && !self.done && pos > 0 && avail < BATCH && !waited) {
              await Promise.race([waitForChange(), new Promise((r) => setTimeout(r, BATCH_WAIT_MS))]);
              waited = true;
              continue;
            }
            waited = false;
            if (self.fd !== undefined && pos < readable) {
              const buf = await readAt(self.fd, Math.min(chunkSize, readable - pos));
              pos += buf.length;
              this.push(buf);
              return;
            }
            if (self.done && pos >= self.written) {
              this.push(null);
              return;
            }
            await waitForChange();
          }
        } catch (err) {
          this.destroy(err as Error);
        }
      },
      destroy(err, cb) {
        self.readers--;
        self.maybeClose();
        cb(err);
      },
    });
  }
}

/**
 * Bytes on their way into a store that cannot be read back before they are
 * committed (S3: a multipart upload is invisible until complete). The last
 * `limit` bytes stay in memory for readers that keep up; a reader that falls
 * further behind (or arrives late) waits for the commit and goes on from the
 * stored copy at its offset. Memory stays bounded whatever the size, and the
 * writer never waits for a slow reader.
 */
export class GrowingWindow extends EventEmitter implements Growing {
  written = 0;
  done = false;
  error: Error | undefined;
  private chunks: Buffer[] = [];
  /** Offset of chunks[0]. */
  private start = 0;
  private held = 0;
  private rest: ((pos: number) => Promise<Readable>) | undefined;

  constructor(private readonly limit = 8 * 1024 * 1024) {
    super();
    this.setMaxListeners(0);
  }

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.held += chunk.length;
    this.written += chunk.length;
    while (this.chunks.length > 1 && this.held - this.chunks[0].length >= this.limit) {
      const dropped = this.chunks.shift()!;
      this.held -= dropped.length;
      this.start += dropped.length;
    }
    this.emit('change');
  }
  finish(rest?: (pos: number) => Promise<Readable>): void {
    this.rest = rest;
    this.done = true;
    this.emit('change');
  }
  fail(err: Error): void {
    this.error = err;
    this.emit('change');
  }

  /** The window bytes from `pos` (inside the window), at most up to `end`, as one chunk's remainder. */
  private at(pos: number, end: number): Buffer {
    let off = this.start;
    for (const c of this.chunks) {
      if (pos < off + c.length) return c.subarray(pos - off, Math.min(c.length, end - off));
      off += c.length;
    }
    return Buffer.alloc(0);
  }

  reader(): Readable | null {
    if (this.done || this.error) return null;
    const self = this;
    const changed = () => new Promise<void>((resolve) => self.once('change', resolve));
    return Readable.from((async function* () {
      let pos = 0;
      for (;;) {
        if (self.error) throw self.error;
        if (pos < self.start) {
          // Fell behind the window: go on from the committed copy.
          while (!self.done) {
            await changed();
            if (self.error) throw self.error;
          }
          if (pos < self.written) yield* await self.rest!(pos);
          return;
        }
        // As with GrowingFile, the last byte waits for the commit.
        const readable = self.done ? self.written : self.written - 1;
        if (pos < readable) {
          const out = self.at(pos, readable);
          pos += out.length;
          yield out;
          continue;
        }
        if (self.done) return;
        await changed();
      }
    })(), { objectMode: false });
  }
}
