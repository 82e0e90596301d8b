import {
  AbortMultipartUploadCommand, CopyObjectCommand, CreateBucketCommand, DeleteObjectCommand, GetObjectCommand,
  HeadBucketCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client, S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { randomUUID } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { digestFromHex, hexOf, isDigest, type Digest } from '../../lib/digest.js';
import { AppError } from '../../lib/errors.js';
import { byteRange } from '../../lib/streams.js';
import type { ByteRange } from '../../lib/range.js';
import { GrowingWindow, type Growing } from '../../lib/tail.js';
import { OwnedTempDir, sweepLocalTemp } from '../../lib/temp-dirs.js';
import { dirname } from 'node:path';
import type { BlobStat, BlobStore, BlobWriter, Part, PartStore, Staged, StagingLeftover } from './types.js';

export interface S3Options {
  endpoint?: string;
  bucket: string;
  region: string;
  accessKey?: string;
  secretKey?: string;
  forcePathStyle: boolean;
  /** Local temp space the interface asks for: this store writes nothing there itself (content goes to the bucket). */
  tempDir: string;
  /** Multipart part size (bytes); S3's minimum is 5 MiB. */
  partSize?: number;
  /** Largest object moved into place with one server-side CopyObject (S3's limit: 5 GiB); larger ones are streamed through. */
  copyLimit?: number;
  /** Create the bucket when it does not exist (MinIO, s3rver). */
  createBucket?: boolean;
}

function isNotFound(err: unknown): boolean {
  const e = err as S3ServiceException & { Code?: string };
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.Code === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404;
}

const STAGING = 'uploads/';
const SESSIONS = 'sessions/';

/**
 * Blobs in an S3 bucket (AWS, MinIO) under sha256/ab/<hex>. New content streams
 * straight up with a multipart upload (lib-storage; memory is bounded by part
 * size x queue, never the blob): to its final key when the digest is known up
 * front (the upload completes only after the bytes verified, so nothing
 * unverified is ever visible), else to a staging key under uploads/ that
 * `stage` copies into place server-side. Reads stream the object body,
 * passing Range through.
 */
export class S3BlobStore implements BlobStore {
  readonly tempDir: string;
  readonly parts: PartStore;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly partSize: number;
  private readonly copyLimit: number;

  private constructor(o: S3Options, private readonly temp: OwnedTempDir) {
    this.tempDir = temp.dir;
    this.bucket = o.bucket;
    this.partSize = Math.max(o.partSize ?? 8 * 1024 * 1024, 5 * 1024 * 1024);
    this.copyLimit = o.copyLimit ?? 5 * 1024 ** 3;
    this.parts = this.partStore();
    this.client = new S3Client({
      endpoint: o.endpoint || undefined,
      region: o.region || 'us-east-1',
      forcePathStyle: o.forcePathStyle,
      credentials: o.accessKey ? { accessKeyId: o.accessKey, secretAccessKey: o.secretKey ?? '' } : undefined,
      // Checksums on every request cost a full extra pass; the CAS verifies sha256 itself.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  static async open(o: S3Options): Promise<S3BlobStore> {
    const s = new S3BlobStore(o, await OwnedTempDir.create(o.tempDir));
    try {
      await s.client.send(new HeadBucketCommand({ Bucket: o.bucket }));
    } catch (err) {
      if (!isNotFound(err) || o.createBucket === false) {
        await s.close();
        throw new Error(`storage: s3 bucket "${o.bucket}" is not reachable: ${(err as Error).name ?? ''} ${(err as Error).message}`.trim());
      }
      await s.client.send(new CreateBucketCommand({ Bucket: o.bucket }));
    }
    return s;
  }

  private key(d: Digest): string {
    const hex = hexOf(d);
    return `sha256/${hex.slice(0, 2)}/${hex}`;
  }

  async stat(d: Digest): Promise<BlobStat | null> {
    try {
      const h = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(d) }));
      return { digest: d, size: Number(h.ContentLength ?? 0), createdAt: h.LastModified ?? new Date(0) };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async read(d: Digest, range?: ByteRange): Promise<Readable> {
    try {
      const r = await this.client.send(new GetObjectCommand({
        Bucket: this.bucket, Key: this.key(d), Range: range ? `bytes=${range.start}-${range.end}` : undefined,
      }));
      const body = r.Body as Readable;
      if (!range) return body;
      // Trust but check: a store that served more than asked (s3rver answers bytes=0-0 with the whole
      // object, labelled 0-(n-1)) is cut down here to exactly the requested bytes.
      const want = range.end - range.start + 1;
      const got = /^bytes (\d+)-(\d+)\//.exec(r.ContentRange ?? '');
      const gotStart = got ? Number(got[1]) : 0;
      if (gotStart === range.start && r.ContentLength === want) return body;
      if (gotStart > range.start) {
        body.destroy();
        throw new Error(`s3 answered range ${r.ContentRange} for bytes=${range.start}-${range.end}`);
      }
      return byteRange(body, range.start - gotStart, want);
    } catch (err) {
      if (isNotFound(err)) throw new AppError('BLOB_UNKNOWN', `blob ${d} not in store`);
      throw err;
    }
  }

  writer(expected?: Digest): BlobWriter {
    const key = expected ? this.key(expected) : `${STAGING}${randomUUID()}`;
    return { stream: this.uploadSink(key), staged: { object: key } };
  }

  /**
   * A Writable that multipart-uploads to `key`. The upload completes only when the stream
   * finishes; an error or destroy aborts it, so a failed stream leaves nothing behind.
   */
  private uploadSink(key: string): Writable {
    const body = new PassThrough({ highWaterMark: 1 << 20 });
    let upload: Upload | undefined;
    let done: Promise<unknown> | undefined;
    let failed: Error | undefined;
    const begin = () => {
      if (upload) return;
      upload = new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key: key, Body: body, ContentType: 'application/octet-stream' },
        partSize: this.partSize,
        queueSize: 1,
        leavePartsOnError: false,
      });
      done = upload.done();
      done.catch((err: Error) => { failed = err; sink.destroy(err); });
    };
    const sink = new Writable({
      highWaterMark: 1 << 20,
      write(chunk: Buffer, _enc, cb) {
        begin();
        if (failed) return cb(failed);
        if (body.write(chunk)) cb();
        else body.once('drain', () => cb(failed));
      },
      final(cb) {
        begin();
        body.end();
        done!.then(() => cb(), cb);
      },
      destroy(err, cb) {
        if (upload && !body.writableFinished) {
          body.destroy();
          upload.abort().catch(() => {});
        }
        cb(err);
      },
    });
    return sink;
  }

  /**
   * Outside the metadata transaction (the publisher re-checks gc's deletion state after it, see
   * storage/ingest.ts): confirms the object is there, else uploads a local temp file or copies a
   * staging object into place. Written in place and gone (a gc deleted it meanwhile): nothing to copy from.
   */
  async stage(s: Staged, d: Digest, size: number): Promise<void> {
    if (await this.stat(d)) return;
    if (this.isFinal(s, d)) throw new AppError('UNAVAILABLE', `blob ${d} was removed while it was being published; retry`);
    await this.place(s, d, size);
  }

  /** Inside the transaction, so no network call: `stage` did the work; the staging copy is discarded after. */
  async commit(_s: Staged, _d: Digest, _size: number): Promise<void> {}

  /** Drops staged content; an object written in place under a digest stays (it may be shared; gc reaps it if unreferenced). */
  async discard(s: Staged): Promise<void> {
    if ('file' in s) return fsp.rm(s.file, { force: true });
    if (!s.object.startsWith(STAGING) && !s.object.startsWith(SESSIONS)) return;
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: s.object }));
  }

  private isFinal(s: Staged, d: Digest): boolean {
    return 'object' in s && s.object === this.key(d);
  }

  private async place(s: Staged, d: Digest, size: number): Promise<void> {
    if ('file' in s) return this.upload(createReadStream(s.file), d);
    if (size <= this.copyLimit) {
      await this.client.send(new CopyObjectCommand({
        Bucket: this.bucket, Key: this.key(d), CopySource: `${this.bucket}/${s.object}`, ContentType: 'application/octet-stream',
      }));
      return;
    }
    const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: s.object }));
    await this.upload(r.Body as Readable, d);
  }

  private async upload(body: Readable, d: Digest): Promise<void> {
    await pipeline(body, this.uploadSink(this.key(d)));
  }


  /** Parts as objects sessions/<session>/<offset>: any instance sharing the bucket can go on with a session. */
  private partStore(): PartStore {
    const prefix = (session: string) => `${SESSIONS}${session}/`;
    return {
      open: async (session, offset) => {
        const key = `${prefix(session)}${String(offset).padStart(16, '0')}`;
        return { stream: this.uploadSink(key), staged: { object: key } };
      },
      list: async (session) => {
        const parts: Part[] = [];
        for await (const o of this.objects(prefix(session))) {
          const name = o.key.slice(prefix(session).length);
          if (/^\d{16}$/.test(name)) parts.push({ offset: Number(name), size: o.size, staged: { object: o.key } });
        }
        return parts.sort((a, b) => a.offset - b.offset);
      },
      read: async (p) => {
        const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: (p.staged as { object: string }).object }));
        return r.Body as Readable;
      },
      drop: async (session) => {
        for await (const o of this.objects(prefix(session))) await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: o.key }));
      },
      sessions: () => bySession(this.objects(SESSIONS)),
    };
  }

  openFill(): Growing {
    return new GrowingWindow();
  }

  /** Nowhere to move it aside in a bucket: deleted (the next request refetches remote content). */
  async quarantine(d: Digest, _dir: string): Promise<void> {
    await this.delete(d);
  }

  /** Local temp files (spools) of killed processes, staging objects and unfinished multipart uploads. */
  async *sweepStaging(before: number, dryRun: boolean): AsyncIterable<StagingLeftover> {
    yield* sweepLocalTemp(dirname(this.tempDir), before, dryRun);
    for await (const o of this.objects(STAGING)) {
      if (o.modified.getTime() >= before) continue;
      if (!dryRun) await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: o.key }));
      yield { name: `s3://${this.bucket}/${o.key}`, bytes: o.size };
    }
    let uploads;
    try {
      uploads = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket }));
    } catch {
      return; // not offered by every S3 stand-in (s3rver); a bucket lifecycle rule covers it there
    }
    for (const u of uploads.Uploads ?? []) {
      if (!u.Key || !u.UploadId || (u.Initiated?.getTime() ?? 0) >= before) continue;
      if (!dryRun) await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId }));
      yield { name: `s3://${this.bucket}/${u.Key} (multipart ${u.UploadId})`, bytes: 0 };
    }
  }

  async delete(d: Digest): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(d) }));
  }

  async *list(): AsyncIterable<BlobStat> {
    for await (const o of this.objects('sha256/')) {
      const hex = o.key.split('/').pop() ?? '';
      if (isDigest(`sha256:${hex}`)) yield { digest: digestFromHex(hex), size: o.size, createdAt: o.modified };
    }
  }

  /** Every object under `prefix`, page by page. */
  private async *objects(prefix: string): AsyncIterable<{ key: string; size: number; modified: Date }> {
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) {
        if (o.Key) yield { key: o.Key, size: Number(o.Size ?? 0), modified: o.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async close(): Promise<void> {
    this.client.destroy();
    await this.temp.release();
  }
}

/** Session part objects (sessions/<id>/<offset>), which list in key order, grouped by session. */
async function* bySession(objects: AsyncIterable<{ key: string; size: number; modified: Date }>) {
  let current: { session: string; changedAt: number; bytes: number } | undefined;
  for await (const o of objects) {
    const session = o.key.slice(SESSIONS.length).split('/')[0];
    if (current?.session !== session) {
      if (current) yield current;
      current = { session, changedAt: 0, bytes: 0 };
    }
    current.changedAt = Math.max(current.changedAt, o.modified.getTime());
    current.bytes += o.size;
  }
  if (current) yield current;
}
