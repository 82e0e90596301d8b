import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { parseDigest, sha256, type Digest } from '../../lib/digest.js';
import { discardRequest } from '../../lib/streams.js';
import { AppError, isAppError } from '../../lib/errors.js';
import { recordLocalFile, writeTarget } from '../../repos/local.js';
import type { Services } from '../../repos/services.js';
import { ingestBuffer, ingestStream, type Written } from '../../storage/ingest.js';
import type { RepoDef } from '../../storage/meta/types.js';
import type { RequestCtx } from '../types.js';
import { METADATA_SUFFIX, packagePath, type LocalFileMeta } from './docs.js';
import { boundaryOf, parseMultipart } from '../../lib/multipart.js';
import { canonicalVersion, isValidName, normalizeName, parseDistFilename, type DistFile } from './names.js';
import { parseCoreMetadata, readWheelMetadata } from './wheel-metadata.js';

const FIELD_CAP = 1024 * 1024;
/** twine sends a few dozen parts (one per classifier, keyword...); thousands are an attack on memory. */
const MAX_PARTS = 1000;

class Form {
  private readonly fields = new Map<string, string[]>();
  get(k: string): string | undefined {
    return this.fields.get(k)?.[0];
  }
  add(k: string, v: string): void {
    const vals = this.fields.get(k) ?? [];
    vals.push(v);
    this.fields.set(k, vals);
  }
}

interface Stored {
  filename: string;
  dist: DistFile;
  project: string;
  blob: Written;
  md5: string;
}

/**
 * The legacy upload API that twine speaks: a multipart/form-data POST with
 * `:action=file_upload`, the core metadata as fields and the file as `content`.
 * The file streams into the CAS (verified against `sha256_digest` when that
 * field comes first, as twine sends it); nothing becomes visible until every
 * check passed. Refusals are 400 with the reason also in the status line,
 * where twine shows it (and where `--skip-existing` looks for
 * "File already exists").
 */
export async function handleUpload(req: FastifyRequest, reply: FastifyReply, ctx: RequestCtx, svc: Services) {
  try {
    const target = await writeTarget(svc, ctx.repo);
    const rec = await receive(req, svc, target);
    return reply.code(200).send({ ok: true, repo: target.name, ...rec });
  } catch (err) {
    if (!req.raw.readableEnded) {
      discardRequest(req.raw, reply.raw); // the client, still sending, reads our answer
      reply.header('connection', 'close'); // and the socket, its body unread, carries no further request
    }
    if (isAppError(err) && err.status < 500) reply.raw.statusMessage = err.message.replace(/[^\x20-\x7e]/g, '?').slice(0, 300);
    throw err;
  }
}

async function receive(req: FastifyRequest, svc: Services, target: RepoDef) {
  const boundary = boundaryOf(req.headers['content-type']);
  const form = new Form();
  let fieldBytes = 0;
  let stored: Stored | undefined;
  let parts = 0;
  // A refusal after the file was stored leaves its blob unreferenced in the CAS; gc reaps it after the grace period.
  for await (const part of parseMultipart(req.raw, boundary)) {
    if (++parts > MAX_PARTS) throw new AppError('TOO_LARGE', `more than ${MAX_PARTS} form parts`);
    if (part.filename === undefined) {
      const chunks: Buffer[] = [];
      for await (const c of part.body) {
        fieldBytes += c.length;
        if (fieldBytes > FIELD_CAP) throw new AppError('TOO_LARGE', 'form fields exceed 1 MiB');
        chunks.push(c);
      }
      form.add(part.name, Buffer.concat(chunks).toString('utf8'));
      continue;
    }
    if (part.name !== 'content') continue; // gpg_signature and the like: skipped
    if (stored) throw new AppError('BAD_REQUEST', 'more than one content part');
    stored = await storeContent(svc, target, form, part.filename, part.body);
  }
  if (!stored) throw new AppError('BAD_REQUEST', 'no file in the upload (expected a "content" part)');
  return finish(svc, target, form, stored);
}

function checkForm(form: Form, dist: DistFile, filename: string): void {
  const action = form.get(':action');
  if (action !== undefined && action !== 'file_upload') throw new AppError('BAD_REQUEST', `unsupported :action ${action}`);
  const pv = form.get('protocol_version');
  if (pv !== undefined && pv !== '1') throw new AppError('BAD_REQUEST', `unsupported protocol_version ${pv}`);
  const name = form.get('name');
  const version = form.get('version');
  if (name !== undefined && normalizeName(name) !== normalizeName(dist.name)) {
    throw new AppError('BAD_REQUEST', `Start filename for ${JSON.stringify(name)} with ${JSON.stringify(normalizeName(name).replace(/-/g, '_'))} (got ${filename})`);
  }
  if (version !== undefined && canonicalVersion(version) !== canonicalVersion(dist.version)) {
    throw new AppError('BAD_REQUEST', `Version in filename should be ${JSON.stringify(version)} not ${JSON.stringify(dist.version)}`);
  }
  const filetype = form.get('filetype');
  if (filetype !== undefined && filetype !== (dist.kind === 'wheel' ? 'bdist_wheel' : 'sdist')) {
    throw new AppError('BAD_REQUEST', `filetype ${filetype} does not match ${filename}`);
  }
}

function formDigest(form: Form): Digest | undefined {
  const hex = form.get('sha256_digest');
  if (hex === undefined || hex === '') return undefined;
  return parseDigest(`sha256:${hex.trim().toLowerCase()}`, 'BAD_REQUEST');
}

async function alreadyExists(svc: Services, repoName: string, path: string, filename: string): Promise<void> {
  if (await svc.meta.files.get(repoName, path)) {
    throw new AppError('BAD_REQUEST', `File already exists ('${filename}'). A filename can only be used once.`);
  }
}

async function storeContent(svc: Services, target: RepoDef, form: Form, filename: string, body: AsyncIterable<Buffer>): Promise<Stored> {
  const dist = parseDistFilename(filename, { name: form.get('name'), version: form.get('version') });
  checkForm(form, dist, filename);
  const project = normalizeName(dist.name);
  if (!isValidName(dist.name)) throw new AppError('BAD_REQUEST', `invalid project name ${JSON.stringify(dist.name)}`);
  await alreadyExists(svc, target.name, packagePath(project, filename), filename);
  const md5 = createHash('md5');
  const hashed = Readable.from((async function* () {
    for await (const c of body) {
      md5.update(c);
      yield c;
    }
  })(), { objectMode: false });
  let blob: Written;
  try {
    blob = await ingestStream(svc, hashed, {
      expect: { digest: formDigest(form) },
      maxSize: svc.config.uploads.max_size || undefined,
    });
  } catch (err) {
    if (isAppError(err) && err.code === 'DIGEST_INVALID') throw new AppError('DIGEST_INVALID', 'The digest supplied does not match a digest calculated from the uploaded file.');
    throw err;
  }
  return { filename, dist, project, blob, md5: md5.digest('hex') };
}

async function finish(svc: Services, target: RepoDef, form: Form, s: Stored) {
  // Fields may come after the file in other clients: check them again now that all are in.
  const dist = parseDistFilename(s.filename, { name: form.get('name'), version: form.get('version') });
  checkForm(form, dist, s.filename);
  if (!form.get('name') || !form.get('version')) throw new AppError('BAD_REQUEST', 'name and version are required');
  const want = formDigest(form);
  if (want && want !== s.blob.digest) throw new AppError('DIGEST_INVALID', 'The digest supplied does not match a digest calculated from the uploaded file.');
  const md5 = form.get('md5_digest');
  if (md5 && md5.trim().toLowerCase() !== s.md5) throw new AppError('DIGEST_INVALID', 'The md5 digest supplied does not match the uploaded file.');

  const path = packagePath(s.project, s.filename);
  let requiresPython = form.get('requires_python')?.trim() || undefined;
  let metadataSha256: string | undefined;
  let metadataBuf: Buffer | undefined;
  if (dist.kind === 'wheel') {
    metadataBuf = await readWheelMetadata(svc.blob, s.blob.digest, s.blob.size, svc.config.limits.metadata_body);
    const core = parseCoreMetadata(metadataBuf);
    const mName = core.get('name')?.[0];
    const mVersion = core.get('version')?.[0];
    if (!mName || normalizeName(mName) !== s.project) throw new AppError('BAD_REQUEST', `the wheel's METADATA names ${JSON.stringify(mName)}, not ${s.project}`);
    if (!mVersion || canonicalVersion(mVersion) !== canonicalVersion(dist.version)) {
      throw new AppError('BAD_REQUEST', `the wheel's METADATA says version ${JSON.stringify(mVersion)}, the filename ${dist.version}`);
    }
    requiresPython ??= core.get('requires-python')?.[0] || undefined;
    metadataSha256 = sha256(metadataBuf).slice(7);
  }
  const meta: LocalFileMeta = { pypi: 'file', name: form.get('name'), version: form.get('version'), requiresPython, metadataSha256 };
  try {
    await recordLocalFile(svc, target, path, s.blob.digest, s.blob.size, { contentType: 'application/octet-stream', meta: meta as unknown as Record<string, unknown>, immutable: true });
  } catch (err) {
    if (isAppError(err) && err.code === 'CONFLICT') await alreadyExists(svc, target.name, path, s.filename);
    throw err;
  }
  if (metadataBuf) {
    // PEP 658: the wheel's METADATA as its own file next to it.
    const m = await ingestBuffer(svc, metadataBuf);
    await recordLocalFile(svc, target, path + METADATA_SUFFIX, m.digest, m.size, {
      contentType: 'text/plain; charset=utf-8', meta: { pypi: 'metadata' },
    });
  }
  svc.log.info({ repo: target.name, path, digest: s.blob.digest }, 'pypi upload stored');
  return { path, sha256: s.blob.digest.slice(7), size: s.blob.size };
}

