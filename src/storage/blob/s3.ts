import {
  CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand,
  ListObjectsV2Command, S3Client, S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createReadStream, promises as fsp } from 'node:fs';
import { Readable } from 'node:stream';
import { digestFromHex, hexOf, isDigest, type Digest } from '../../lib/digest.js';
import { AppError } from '../../lib/errors.js';
import type { ByteRange } from '../../lib/range.js';
import type { BlobStat, BlobStore } from './types.js';

export interface S3Options {
  endpoint?: string;
  bucket: string;
  region: string;
  accessKey?: string;
  secretKey?: string;
  forcePathStyle: boolean;
  /** Local spool directory for incoming content (hashed and verified there before upload). */
  tempDir: string;
  /** Multipart part size (bytes); S3's minimum is 5 MiB. */
  partSize?: number;
  /** Create the bucket when it does not exist (MinIO, s3rver). */
  createBucket?: boolean;
}

function isNotFound(err: unknown): boolean {
  const e = err as S3ServiceException & { Code?: string };
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.Code === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404;
}

/**
 * Blobs in an S3 bucket (AWS, MinIO) under sha256/ab/<hex>. Content is spooled
 * and verified in a local temp file first, then `commit` streams it up with a
 * multipart upload (lib-storage) and drops the temp file. Reads stream the
 * object body, passing Range through.
 */
export class S3BlobStore implements BlobStore {
  readonly tempDir: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly partSize: number;

  private constructor(o: S3Options) {
    this.tempDir = o.tempDir;
    this.bucket = o.bucket;
    this.partSize = Math.max(o.partSize ?? 8 * 1024 * 1024, 5 * 1024 * 1024);
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
    const s = new S3BlobStore(o);
    await fsp.mkdir(o.tempDir, { recursive: true });
    try {
      await s.client.send(new HeadBucketCommand({ Bucket: o.bucket }));
    } catch (err) {
      if (!isNotFound(err) || o.createBucket === false) {
        s.client.destroy();
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
      return slice(body, range.start - gotStart, want);
      return body;
    } catch (err) {
      if (isNotFound(err)) throw new AppError('BLOB_UNKNOWN', `blob ${d} not in store`);
      throw err;
    }
  }

  /** Uploads ahead of the metadata transaction (multipart from the temp file); keeps the temp file. */
  async stage(tempFile: string, d: Digest, size: number): Promise<void> {
    if (await this.stat(d)) return;
    await this.upload(tempFile, d, size);
  }

  /** Inside the transaction: normally just a HEAD (stage did the upload); uploads if the object is missing. */
  async commit(tempFile: string, d: Digest, size: number): Promise<void> {
    try {
      if (await this.stat(d)) return;
      await this.upload(tempFile, d, size);
    } finally {
      await fsp.rm(tempFile, { force: true });
    }
  }

  private async upload(tempFile: string, d: Digest, size: number): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: this.key(d), Body: createReadStream(tempFile), ContentLength: size, ContentType: 'application/octet-stream' },
      partSize: this.partSize,
      queueSize: 4,
      leavePartsOnError: false,
    });
    await upload.done();
  }

  async delete(d: Digest): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(d) }));
  }

  async *list(): AsyncIterable<BlobStat> {
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: 'sha256/', ContinuationToken: token }));
      for (const o of page.Contents ?? []) {
        const hex = (o.Key ?? '').split('/').pop() ?? '';
        if (!isDigest(`sha256:${hex}`)) continue;
        yield { digest: digestFromHex(hex), size: Number(o.Size ?? 0), createdAt: o.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

/** The `length` bytes at `start` of a stream that carries a whole object. */
function slice(src: Readable, start: number, length: number): Readable {
  return Readable.from((async function* () {
    let pos = 0;
    let left = length;
    try {
      for await (const c of src) {
        const chunk = c as Buffer;
        const from = Math.max(0, start - pos);
        pos += chunk.length;
        if (from >= chunk.length) continue;
        const part = chunk.subarray(from, from + left);
        left -= part.length;
        yield part;
        if (left === 0) return;
      }
    } finally {
      src.destroy();
    }
  })(), { objectMode: false });
}
