import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { AppError } from '../../lib/errors.js';
import { writeLocalRow, writeTarget } from '../../repos/local.js';
import { resolveListed, type ListedFile } from '../../repos/listed.js';
import { byKind, resolveDoc, resolveFile } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import { sendDocument, sendServed } from '../../server/send.js';
import { ingestStream } from '../../storage/ingest.js';
import type { RepoDef } from '../../storage/meta/types.js';
import type { FormatHandler } from '../types.js';
import { ApkScanner } from './apk.js';
import {
  findEntry, indexSource, type Entry, INDEX_FILE, INDEX_TYPE, isArch, localIndexDoc, packageFields, renderSigned,
} from './index-doc.js';
import { signingKey } from './keys.js';
import { removeFile } from '../../repos/writes.js';
import { ALPINE_OPTIONS } from './options.js';

const APK_TYPE = 'application/octet-stream';
const KEY_TYPE = 'application/x-pem-file';
// <branch>/<repo>/<arch>/<file>, as in /etc/apk/repositories + what apk appends: captures dir, arch, file.
const DIR = '((?:[A-Za-z0-9][A-Za-z0-9._+-]*)/(?:[A-Za-z0-9][A-Za-z0-9._+-]*)/([^/]+))';
const INDEX_RE = new RegExp(`^${DIR}/${INDEX_FILE.replace(/\./g, '\\.')}$`);
const APK_RE = new RegExp(`^${DIR}/([^/]+\\.apk)$`);
const KEY_RE = /^keys\/([^/]+\.rsa\.pub)$/;

/**
 * Alpine (apk v2) repositories under /REPO/: `<branch>/<repo>/<arch>/APKINDEX.tar.gz`, the
 * packages it lists, and the index signing key under `keys/`. A local repo's indexes are derived
 * on every write, signed with the repo's key and stored; a remote repo serves the upstream's
 * indexes as they are (signed by the upstream's keys) and checks each package against its `C:`;
 * a virtual repo merges its members' indexes and signs the result with its own key.
 */
export const alpine: FormatHandler = {
  name: 'alpine',
  options: ALPINE_OPTIONS,

  routes: [
    { method: 'GET', path: /^keys$/, action: 'read', handle: ({ req, reply, ctx, svc }) => sendKey(req, reply, ctx.repo, svc) },
    { method: 'GET', path: KEY_RE, action: 'read', handle: ({ req, reply, ctx, svc, params: [file] }) => sendKey(req, reply, ctx.repo, svc, file) },
    {
      method: 'GET', path: INDEX_RE, action: 'read',
      handle: async ({ req, reply, ctx, svc, path, params: [dir, arch] }) => sendIndex(req, reply, ctx.repo, svc, inArchDir(path, dir, arch)),
    },
    {
      method: 'GET', path: APK_RE, action: 'read',
      handle: async ({ req, reply, ctx, svc, path, params: [dir, arch, file] }) =>
        sendServed(req, reply, await resolveListed(svc, ctx.repo, apkFile(svc, inArchDir(path, dir, arch), file)), svc, { contentType: APK_TYPE }),
    },
    {
      method: 'PUT', path: APK_RE, action: 'write',
      handle: async ({ req, reply, ctx, svc, path, params: [dir, arch, file] }) =>
        reply.code(201).send(await savePackage(svc, await writeTarget(svc, ctx.repo), req.raw, inArchDir(path, dir, arch), arch, file)),
    },
    {
      method: 'DELETE', path: APK_RE, action: 'delete',
      handle: async ({ reply, ctx, svc, path, params: [dir, arch, file] }) =>
        reply.send(await deletePackage(svc, await writeTarget(svc, ctx.repo), inArchDir(path, dir, arch), file)),
    },
  ],
};

/** `dir` when `arch` is one apk knows, else this path is no part of the repository. */
function inArchDir(path: string, dir: string, arch: string): string {
  if (!isArch(arch)) throw new AppError('NOT_FOUND', notPart(path));
  return dir;
}

const notPart = (path: string) => `${path} is not part of an Alpine repository (<branch>/<repo>/<arch>/APKINDEX.tar.gz or <name>-<version>.apk)`;

/**
 * An APKINDEX by kind. Local: the stored index (a directory that never had a package has none:
 * 404). Remote: the upstream's bytes. Virtual: the members' merged, signed with its own key.
 */
function sendIndex(req: FastifyRequest, reply: FastifyReply, repo: RepoDef, svc: Services, dir: string) {
  const src = indexSource(svc, dir);
  const stored = async (r: RepoDef) => sendServed(req, reply, await resolveFile(svc, r, src.ref), svc, { contentType: INDEX_TYPE });
  return byKind<Promise<unknown>>(repo, {
    local: stored,
    remote: stored,
    async virtual(r) {
      const served = await resolveDoc(svc, r, src);
      return sendDocument(req, reply, served, await renderSigned(svc, r, dir, served.doc), INDEX_TYPE, { compress: false });
    },
  });
}

/**
 * `keys/` (the file name of the key this repo signs with, for `wget -P /etc/apk/keys`) and
 * `keys/<file>`: a local or virtual repo's own key; a remote repo's keys are its upstream's.
 */
function sendKey(req: FastifyRequest, reply: FastifyReply, repo: RepoDef, svc: Services, file?: string) {
  const own = async (r: RepoDef) => {
    const key = await signingKey(svc, r);
    if (file === undefined) return sendDocument(req, reply, { source: 'local', servedBy: r.name }, `${key.name}.rsa.pub\n`, 'text/plain; charset=utf-8');
    if (file !== `${key.name}.rsa.pub`) throw new AppError('NOT_FOUND', `${r.name} signs with ${key.name}.rsa.pub, not ${file}`);
    return sendDocument(req, reply, { source: 'local', servedBy: r.name }, key.publicPem, KEY_TYPE);
  };
  return byKind<Promise<unknown>>(repo, {
    local: own,
    virtual: own,
    async remote(r) {
      if (file === undefined) throw new AppError('NOT_FOUND', 'a remote repo serves its upstream\'s indexes, signed by the upstream\'s keys');
      return sendServed(req, reply, await resolveFile(svc, r, { path: `keys/${file}`, mutable: true, rejectHtml: true }), svc, { contentType: KEY_TYPE });
    },
  });
}

/**
 * A package as its directory's index lists it (repos/listed.ts). Remote: only one the upstream's
 * index lists, checked while it streams in against the entry's size and `C:` (a mismatch is never
 * cached nor sent complete). Virtual: from the member whose entry the merged index kept.
 */
function apkFile(svc: Services, dir: string, file: string): ListedFile<Entry[], Entry> {
  return {
    doc: indexSource(svc, dir),
    path: `${dir}/${file}`,
    what: `${file} of the index of ${dir}`,
    find: (entries) => findEntry(entries, file),
    origin: (_entries, entry) => entry.member,
    upstream(_repo, entry) {
      const check = new ApkScanner(`upstream ${file}`, (info) => {
        if (info.checksum !== entry.checksum) throw new AppError('DIGEST_INVALID', `${file}: control checksum ${info.checksum} differs from the index's ${entry.checksum}`);
      }, 'DIGEST_INVALID');
      return { contentType: APK_TYPE, expect: { size: entry.size, check } };
    },
  };
}

/**
 * Stores a package: streamed into the blob store while its control stream is read and checked
 * (a non-apk, or a .PKGINFO that contradicts the file name, fails before anything is published);
 * the row is written in the publishing transaction, then the directory's index is regenerated.
 */
async function savePackage(svc: Services, target: RepoDef, src: Readable, dir: string, arch: string, file: string) {
  const path = `${dir}/${file}`;
  if (await svc.meta.files.get(target.name, path)) throw new AppError('CONFLICT', `${path} already exists in ${target.name} and cannot be overwritten`);
  await signingKey(svc, target); // a key that cannot sign fails the upload before anything is stored
  let fields: [string, string][] = [];
  const check = new ApkScanner(file, (info, size) => { fields = packageFields(info, size, file, arch); });
  const w = await ingestStream(svc, src, { maxSize: svc.config.uploads.max_size || undefined, expect: { check } }, (m, s) =>
    writeLocalRow(m, target, path, s.digest, s.size, { contentType: APK_TYPE, meta: { kind: 'apk', fields }, immutable: true }));
  await svc.derived.refresh(svc, target, localIndexDoc(dir));
  return { saved: true, path, checksum: check.info!.checksum, digest: w.digest.slice(7) };
}

async function deletePackage(svc: Services, target: RepoDef, dir: string, file: string) {
  const path = `${dir}/${file}`;
  const rec = await svc.meta.files.get(target.name, path);
  if (rec?.meta?.kind !== 'apk') throw new AppError('NOT_FOUND', `${path} not found in ${target.name}`);
  await signingKey(svc, target);
  await removeFile(svc, target.name, path);
  await svc.derived.refresh(svc, target, localIndexDoc(dir));
  return { deleted: true };
}
