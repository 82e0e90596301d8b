import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import semver from 'semver';
import { parseJson } from '../../lib/decode.js';
import { AppError } from '../../lib/errors.js';
import { putLocalFile, writeLocalRow } from '../../repos/local.js';
import type { Services } from '../../repos/services.js';
import { ingestBuffer } from '../../storage/ingest.js';
import type { RepoDef } from '../../storage/meta/types.js';
import { hashesOf, loadLocal, type Json, type Manifest, type Packument } from './index-doc.js';
import { paths, tarballFileOf, unscoped } from './names.js';
import { checkTarball } from './tarball.js';
import { collectRequest } from '../../lib/streams.js';
import { removeFile } from '../../repos/writes.js';

/**
 * Local writes, the npm registry's way: publish (PUT of a packument carrying
 * base64 `_attachments`), packument updates (deprecate, the unpublish of one
 * version: PUT /name/-rev/REV), package and tarball DELETEs, dist-tags. Each
 * package's document is one row (`name/-/_packument.json` -> a JSON blob),
 * rewritten under a per-package lock; tarballs are rows of their own.
 */

function isObject(v: unknown): v is Json {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

/** Reads a request body into memory, refusing more than `cap` bytes (413). */
export function readBody(req: FastifyRequest, cap: number): Promise<Buffer> {
  return collectRequest(req.raw, cap);
}

async function readJson(req: FastifyRequest, cap: number): Promise<unknown> {
  return parseJson(await readBody(req, cap), 'BAD_REQUEST', 'request body is not valid JSON');
}

function lockKey(repo: RepoDef, name: string): string {
  return `npm:${repo.name}:${name}`;
}

function newDoc(name: string): Packument {
  return { _id: name, name, 'dist-tags': {}, versions: {}, time: {} };
}

/** A deep copy we may change (documents from loadLocal are shared through caches). */
async function editable(svc: Services, repo: RepoDef, name: string): Promise<Packument | null> {
  const d = await loadLocal(svc, repo, name);
  return d ? (structuredClone(d.json) as Packument) : null;
}

async function save(svc: Services, repo: RepoDef, doc: Packument): Promise<string> {
  const n = Number.parseInt(String(doc._rev ?? '0'), 10) || 0;
  doc._rev = `${n + 1}-${randomBytes(8).toString('hex')}`;
  doc.time = { ...doc.time, modified: new Date().toISOString() };
  const buf = Buffer.from(JSON.stringify(doc));
  await ingestBuffer(svc, buf, (m, s) =>
    writeLocalRow(m, repo, paths.doc(doc.name), s.digest, s.size, { contentType: 'application/json', meta: { kind: 'packument' } }));
  return doc._rev;
}

function checkRev(doc: Packument, rev: string | undefined): void {
  if (rev !== undefined && doc._rev !== undefined && rev !== doc._rev) {
    throw new AppError('CONFLICT', `document update conflict: revision ${rev} is not the current one (${doc._rev})`);
  }
}

/** Keeps `latest` pointing at a version that exists (the highest one when its target is gone). */
function fixLatest(doc: Packument): void {
  for (const [t, v] of Object.entries(doc['dist-tags'])) if (!doc.versions[v]) delete doc['dist-tags'][t];
  if (!doc['dist-tags'].latest) {
    const all = Object.keys(doc.versions).filter((v) => semver.valid(v));
    const stable = all.filter((v) => !semver.prerelease(v));
    const best = semver.rsort(stable.length ? stable : all)[0];
    if (best) doc['dist-tags'].latest = best;
  }
}

const TOP_LEVEL_SKIP = new Set(['versions', 'dist-tags', 'time', 'access', 'name', '_id', '_rev', '_attachments', '_revisions', 'users']);

/** PUT /REPO/<name>[/-rev/<rev>]: a publish when it carries attachments, else an update of the document. */
export async function putPackage(req: FastifyRequest, svc: Services, target: RepoDef, name: string, rev?: string): Promise<Json> {
  const body = await readJson(req, svc.config.limits.publish_body);
  if (!isObject(body)) throw new AppError('BAD_REQUEST', 'expected a packument JSON object');
  if (body.name !== undefined && body.name !== name) throw new AppError('BAD_REQUEST', `package name ${JSON.stringify(body.name)} does not match the URL (${name})`);
  if (!isObject(body.versions)) throw new AppError('BAD_REQUEST', 'packument has no versions object');
  const attachments = isObject(body._attachments) && Object.keys(body._attachments).length > 0 ? body._attachments : null;
  return attachments ? publish(svc, target, name, body, attachments) : update(svc, target, name, body, rev);
}

interface Prepared {
  version: string;
  manifest: Manifest;
  file: string;
  data: Buffer;
  sha512: string;
  sha1: string;
}

function prepare(name: string, version: string, manifest: unknown, attachments: Json): Prepared {
  if (!isObject(manifest)) throw new AppError('BAD_REQUEST', `version ${version} is not an object`);
  if (semver.valid(version) !== version) throw new AppError('BAD_REQUEST', `invalid version: ${JSON.stringify(version)}`);
  if (manifest.version !== version) throw new AppError('BAD_REQUEST', `manifest version ${JSON.stringify(manifest.version)} does not match ${version}`);
  if (manifest.name !== name) throw new AppError('BAD_REQUEST', `manifest name ${JSON.stringify(manifest.name)} does not match ${name}`);
  const dist = isObject(manifest.dist) ? manifest.dist : {};
  const file = `${unscoped(name)}-${version}.tgz`;
  const wanted = tarballFileOf(dist.tarball);
  const keys = Object.keys(attachments);
  const key = keys.find((k) => tarballFileOf(k) === wanted) ?? keys.find((k) => k.endsWith(`-${version}.tgz`))
    ?? (keys.filter((k) => k.endsWith('.tgz')).length === 1 ? keys.find((k) => k.endsWith('.tgz')) : undefined);
  const att = key ? attachments[key] : undefined;
  if (!isObject(att) || typeof att.data !== 'string') throw new AppError('BAD_REQUEST', `no tarball attachment for ${name}@${version}`);
  const data = Buffer.from(att.data, 'base64');
  if (data.length === 0) throw new AppError('BAD_REQUEST', `empty tarball for ${name}@${version}`);
  if (att.length !== undefined && Number(att.length) !== data.length) {
    throw new AppError('SIZE_INVALID', `attachment length ${att.length} does not match its ${data.length} bytes`);
  }
  const sha512 = createHash('sha512').update(data).digest('hex');
  const sha1 = createHash('sha1').update(data).digest('hex');
  const claimed = hashesOf(dist);
  const actual: Record<string, string> = { sha512, sha1 };
  if (claimed.sha384) actual.sha384 = createHash('sha384').update(data).digest('hex');
  for (const [alg, hex] of Object.entries(claimed)) {
    if (actual[alg] !== hex) throw new AppError('DIGEST_INVALID', `${name}@${version}: tarball ${alg} does not match dist.integrity/shasum`);
  }
  const integrity = typeof dist.integrity === 'string' && claimed.sha512 ? dist.integrity : `sha512-${Buffer.from(sha512, 'hex').toString('base64')}`;
  const clean: Manifest = { ...manifest, _id: `${name}@${version}`, dist: { ...dist, tarball: file, integrity, shasum: sha1 } };
  return { version, manifest: clean, file, data, sha512, sha1 };
}

async function publish(svc: Services, target: RepoDef, name: string, body: Json, attachments: Json): Promise<Json> {
  const versions = Object.entries(body.versions as Json);
  if (versions.length === 0) throw new AppError('BAD_REQUEST', 'publish carries no version');
  const access = body.access;
  if (access !== undefined && access !== null && access !== 'public' && access !== 'restricted') {
    throw new AppError('BAD_REQUEST', `access must be "public" or "restricted"`);
  }
  if (access === 'restricted' && !name.startsWith('@')) throw new AppError('BAD_REQUEST', "can't restrict access to unscoped packages");
  const prepared = versions.map(([v, m]) => prepare(name, v, m, attachments));
  for (const p of prepared) await checkTarball(p.data, svc.config.limits.unpacked_size, `${name}@${p.version}`);
  const tags = isObject(body['dist-tags']) ? body['dist-tags'] : {};

  return svc.coord.withLock(lockKey(target, name), async () => {
    const doc = (await editable(svc, target, name)) ?? newDoc(name);
    for (const p of prepared) {
      if (doc.versions[p.version]) {
        throw new AppError('CONFLICT', `cannot publish over the previously published version ${name}@${p.version}`);
      }
    }
    const now = new Date().toISOString();
    for (const p of prepared) {
      await putLocalFile(svc, target, paths.tarball(name, p.file), Readable.from([p.data]), {
        expect: { size: p.data.length, hashes: { sha512: p.sha512, sha1: p.sha1 } },
        contentType: 'application/octet-stream',
        meta: { kind: 'tarball', name, version: p.version },
      });
      doc.versions[p.version] = p.manifest;
      doc.time = { ...doc.time, [p.version]: now };
    }
    doc.time!.created ??= now;
    for (const [t, v] of Object.entries(tags)) if (typeof v === 'string' && doc.versions[v]) doc['dist-tags'][t] = v;
    if (!doc['dist-tags'].latest) fixLatest(doc);
    for (const [k, v] of Object.entries(body)) if (!TOP_LEVEL_SKIP.has(k) && !k.startsWith('_')) doc[k] = v;
    if (access) doc._access = access;
    const rev = await save(svc, target, doc);
    return { ok: true, id: name, rev, success: true };
  });
}

/**
 * A packument sent back without attachments: the npm client's `deprecate`
 * (whole document, `deprecated` changed) and the first step of unpublishing
 * one version (whole document minus that version, to /-rev/REV). Manifests
 * are immutable: only removals, `deprecated` and dist-tags are taken.
 */
async function update(svc: Services, target: RepoDef, name: string, body: Json, rev?: string): Promise<Json> {
  const sent = body.versions as Json;
  return svc.coord.withLock(lockKey(target, name), async () => {
    const doc = await editable(svc, target, name);
    if (!doc) throw new AppError('NOT_FOUND', `${name} is not in ${target.name}`);
    checkRev(doc, rev ?? (typeof body._rev === 'string' ? body._rev : undefined));
    for (const v of Object.keys(sent)) {
      if (!doc.versions[v]) throw new AppError('BAD_REQUEST', `${name}@${v} was never published here; publish it with its tarball`);
    }
    if (Object.keys(sent).length === 0) throw new AppError('BAD_REQUEST', `use DELETE to remove every version of ${name}`);
    for (const v of Object.keys(doc.versions)) {
      const m = sent[v];
      if (!isObject(m)) {
        delete doc.versions[v];
        if (doc.time) delete doc.time[v];
        continue;
      }
      if (typeof m.deprecated === 'string' && m.deprecated !== '') doc.versions[v] = { ...doc.versions[v], deprecated: m.deprecated };
      else if (doc.versions[v].deprecated !== undefined) {
        const { deprecated: _d, ...rest } = doc.versions[v];
        doc.versions[v] = rest;
      }
    }
    if (isObject(body['dist-tags'])) {
      doc['dist-tags'] = {};
      for (const [t, v] of Object.entries(body['dist-tags'])) if (typeof v === 'string' && doc.versions[v]) doc['dist-tags'][t] = v;
    }
    fixLatest(doc);
    const newRev = await save(svc, target, doc);
    return { ok: true, id: name, rev: newRev };
  });
}

/** DELETE /REPO/<name>/-rev/<rev>: the whole package, document and tarballs. */
export async function deletePackage(svc: Services, target: RepoDef, name: string, rev?: string): Promise<Json> {
  return svc.coord.withLock(lockKey(target, name), async () => {
    const doc = await loadLocal(svc, target, name);
    if (!doc) throw new AppError('NOT_FOUND', `${name} is not in ${target.name}`);
    checkRev(doc.json, rev);
    const rows: string[] = [];
    for await (const f of svc.meta.files.list(target.name, paths.prefix(name))) rows.push(f.path);
    for (const p of rows) if (p !== paths.doc(name)) await removeFile(svc, target.name, p);
    await removeFile(svc, target.name, paths.doc(name));
    return { ok: true, id: name };
  });
}

/** DELETE /REPO/<name>/-/<file>/-rev/<rev>: a tarball no version refers to any more (unpublish's last step). */
export async function deleteTarball(svc: Services, target: RepoDef, name: string, file: string, rev?: string): Promise<Json> {
  return svc.coord.withLock(lockKey(target, name), async () => {
    const doc = await loadLocal(svc, target, name);
    if (doc) {
      checkRev(doc.json, rev);
      const still = Object.entries(doc.json.versions).find(([, m]) => tarballFileOf(m.dist?.tarball) === file);
      if (still) throw new AppError('CONFLICT', `${file} is still the tarball of ${name}@${still[0]}; unpublish that version first`);
    }
    const path = paths.tarball(name, file);
    if (!(await svc.meta.files.get(target.name, path))) throw new AppError('NOT_FOUND', `${file} is not in ${target.name}`);
    await removeFile(svc, target.name, path);
    return { ok: true };
  });
}

const TAG = /^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$/;

/** PUT /REPO/-/package/<name>/dist-tags/<tag> with a JSON string body (the version). */
export async function addDistTag(req: FastifyRequest, svc: Services, target: RepoDef, name: string, tag: string): Promise<Json> {
  if (!TAG.test(tag) || semver.validRange(tag)) throw new AppError('TAG_INVALID', `invalid dist-tag: ${JSON.stringify(tag)}`);
  const body = await readJson(req, svc.config.limits.metadata_body);
  if (typeof body !== 'string') throw new AppError('BAD_REQUEST', 'expected a JSON string: the version to tag');
  return svc.coord.withLock(lockKey(target, name), async () => {
    const doc = await editable(svc, target, name);
    if (!doc) throw new AppError('NOT_FOUND', `${name} is not in ${target.name}`);
    if (!doc.versions[body]) throw new AppError('NOT_FOUND', `${name}@${body} is not in ${target.name}`);
    doc['dist-tags'][tag] = body;
    await save(svc, target, doc);
    return { ok: true, id: name, 'dist-tags': doc['dist-tags'] };
  });
}

/** DELETE /REPO/-/package/<name>/dist-tags/<tag>. `latest` stays (it always names a version while any exists). */
export async function removeDistTag(svc: Services, target: RepoDef, name: string, tag: string): Promise<Json> {
  if (tag === 'latest') throw new AppError('BAD_REQUEST', 'the latest dist-tag cannot be removed');
  return svc.coord.withLock(lockKey(target, name), async () => {
    const doc = await editable(svc, target, name);
    if (!doc) throw new AppError('NOT_FOUND', `${name} is not in ${target.name}`);
    if (!doc['dist-tags'][tag]) throw new AppError('NOT_FOUND', `${tag} is not a dist-tag of ${name}`);
    delete doc['dist-tags'][tag];
    await save(svc, target, doc);
    return { ok: true, id: name, 'dist-tags': doc['dist-tags'] };
  });
}
