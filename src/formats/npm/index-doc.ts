import { createHash } from 'node:crypto';
import { parseJson } from '../../lib/decode.js';
import { AppError } from '../../lib/errors.js';
import type { ExtraHashes } from '../../lib/spool.js';
import type { DocSource } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import type { RepoDef } from '../../storage/meta/types.js';
import { escapeName, paths, tarballFileOf } from './names.js';
import { collect } from '../../lib/streams.js';
import type { RenderedDoc } from '../../server/send.js';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';

const gzipAsync = promisify(gzip);

export type Json = Record<string, unknown>;

export interface Dist extends Json {
  tarball?: string;
  integrity?: string;
  shasum?: string;
}

export interface Manifest extends Json {
  name?: string;
  version?: string;
  dist?: Dist;
  deprecated?: string;
}

/** A packument as npm shapes it (the stored form; rendering rewrites tarball URLs). */
export interface Packument extends Json {
  name: string;
  'dist-tags': Record<string, string>;
  versions: Record<string, Manifest>;
  time?: Record<string, string>;
  _rev?: string;
}

/**
 * What the kinds pass around: the parsed packument (never mutated once made:
 * it is shared through caches), an identity of the bytes it came from (render
 * cache key), and for merged documents the member that serves each version.
 */
export interface PackDoc {
  json: Packument;
  key?: string;
  origin?: Map<string, string>;
  byFile?: Map<string, string>;
}

export const ABBREVIATED_TYPE = 'application/vnd.npm.install-v1+json';

/** Accept asks for the abbreviated (install-v1) form. */
export function wantsAbbreviated(accept: string | undefined): boolean {
  if (!accept) return false;
  for (const part of accept.split(',')) {
    const [type, ...params] = part.split(';').map((s) => s.trim());
    if (type.toLowerCase() !== ABBREVIATED_TYPE) continue;
    const q = params.find((p) => p.startsWith('q='));
    return !q || Number(q.slice(2)) > 0;
  }
  return false;
}

/**
 * Parsed documents live in `svc.parsedDocs` (bounded by weight, shared with every format) under
 * `npm:<blob digest>` (merges: `npm:m:<member=digest|...>`), rendered bodies under
 * `npm-render:<document>|<form>|<repo URL>|<name>`. Busy packages' packuments (typescript,
 * @types/node: ~10 MiB, ~30 MiB parsed) must fit, or every request re-parses them.
 */
const parsedKey = (k: string) => `npm:${k}`;
const renderKey = (k: string) => `npm-render:${k}`;

/** Counts of real parses and renders (cache misses): what the caches save shows here. */
export const docWork = { parses: 0, renders: 0 };

function isObject(v: unknown): v is Json {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

/** Checks the shape we rely on; drops versions we could not serve. */
export function normalise(raw: unknown, name: string): Packument {
  if (!isObject(raw)) throw new AppError('UPSTREAM_FAILED', `packument of ${name} is not a JSON object`);
  const versions: Record<string, Manifest> = {};
  if (isObject(raw.versions)) {
    for (const [v, m] of Object.entries(raw.versions)) {
      if (isObject(m) && isObject(m.dist) && typeof m.dist.tarball === 'string') versions[v] = m as Manifest;
    }
  }
  const tags: Record<string, string> = {};
  if (isObject(raw['dist-tags'])) {
    for (const [t, v] of Object.entries(raw['dist-tags'])) if (typeof v === 'string' && versions[v]) tags[t] = v;
  }
  const time: Record<string, string> = {};
  if (isObject(raw.time)) for (const [k, v] of Object.entries(raw.time)) if (typeof v === 'string') time[k] = v;
  return { ...raw, name: typeof raw.name === 'string' ? raw.name : name, 'dist-tags': tags, versions, time };
}

/** A stored packument (upstream original or our own document), parsed once per distinct content (`key`: its blob digest). */
export function parseStored(svc: Services, body: Buffer, name: string, key?: string): PackDoc {
  const k = key ?? `sha256:${createHash('sha256').update(body).digest('hex')}`;
  const hit = svc.parsedDocs.get(parsedKey(k)) as PackDoc | undefined;
  if (hit) return hit;
  const raw = parseJson(body, 'UPSTREAM_FAILED', `packument of ${name} is not valid JSON`);
  const doc: PackDoc = { json: normalise(raw, name), key: k };
  docWork.parses++;
  svc.parsedDocs.set(parsedKey(k), doc, body.length * 3);
  return doc;
}

/** The version a tarball file belongs to. */
export function versionOfFile(doc: PackDoc, file: string): string | undefined {
  if (!doc.byFile) {
    const m = new Map<string, string>();
    for (const [v, man] of Object.entries(doc.json.versions)) {
      const f = tarballFileOf(man.dist?.tarball);
      if (f && !m.has(f)) m.set(f, v);
    }
    doc.byFile = m;
  }
  return doc.byFile.get(file);
}

/** `dist` -> hashes the core verifies before caching: sha512/sha1 from `integrity`, sha1 from `shasum`. */
export function hashesOf(dist: Dist | undefined): ExtraHashes {
  const out: ExtraHashes = {};
  if (!dist) return out;
  if (typeof dist.integrity === 'string') {
    for (const entry of dist.integrity.trim().split(/\s+/)) {
      const m = /^(sha1|sha384|sha512)-([A-Za-z0-9+/=]+)(\?.*)?$/.exec(entry);
      if (m) out[m[1] as 'sha1' | 'sha384' | 'sha512'] = Buffer.from(m[2], 'base64').toString('hex');
    }
  }
  if (typeof dist.shasum === 'string' && /^[a-f0-9]{40}$/i.test(dist.shasum)) out.sha1 ??= dist.shasum.toLowerCase();
  return out;
}

/** Merges member documents in order: versions, dist-tags and times of all; the first member wins on conflicts. */
export function mergeDocs(svc: Services, name: string, parts: { member: RepoDef; doc: PackDoc }[]): PackDoc {
  const key = parts.every((p) => p.doc.key) ? `m:${parts.map((p) => `${p.member.name}=${p.doc.key}`).join('|')}` : undefined;
  const hit = key ? (svc.parsedDocs.get(parsedKey(key)) as PackDoc | undefined) : undefined;
  if (hit) return hit;
  const versions: Record<string, Manifest> = {};
  const tags: Record<string, string> = {};
  const time: Record<string, string> = {};
  const origin = new Map<string, string>();
  for (const { member, doc } of parts) {
    for (const [v, m] of Object.entries(doc.json.versions)) {
      if (versions[v]) continue;
      versions[v] = m;
      origin.set(v, member.name);
      if (doc.json.time?.[v]) time[v] = doc.json.time[v];
    }
    for (const [t, v] of Object.entries(doc.json['dist-tags'])) tags[t] ??= v;
    for (const k of ['created', 'modified']) {
      const t = doc.json.time?.[k];
      if (t && (!time[k] || (k === 'created' ? t < time[k] : t > time[k]))) time[k] = t;
    }
  }
  const { _rev: _drop, ...first } = parts[0].doc.json;
  const doc: PackDoc = { json: { ...first, _id: name, name, 'dist-tags': tags, versions, time }, key, origin };
  if (key) svc.parsedDocs.set(parsedKey(key), doc, Object.keys(versions).length * 2048);
  return doc;
}

const ABBREVIATED_FIELDS = [
  'name', 'version', 'deprecated', 'dependencies', 'optionalDependencies', 'devDependencies', 'bundleDependencies',
  'bundledDependencies', 'peerDependencies', 'peerDependenciesMeta', 'acceptDependencies', 'bin', 'directories', 'dist',
  'engines', '_hasShrinkwrap', 'hasInstallScript', 'cpu', 'os', 'libc', 'funding', 'license',
];

function withTarball(m: Manifest, tarballBase: string): Manifest {
  const file = tarballFileOf(m.dist?.tarball);
  return { ...m, dist: { ...m.dist, tarball: file ? `${tarballBase}${encodeURIComponent(file)}` : m.dist?.tarball } };
}

function abbreviate(m: Manifest, tarballBase: string): Manifest {
  const out: Manifest = {};
  for (const f of ABBREVIATED_FIELDS) if (m[f] !== undefined) out[f] = m[f];
  if (out.hasInstallScript === undefined && isObject(m.scripts)) {
    const s = m.scripts;
    if (s.preinstall || s.install || s.postinstall) out.hasInstallScript = true;
  }
  return withTarball(out, tarballBase);
}

/** URL prefix of a package's tarballs in a repo: `${repoUrl}/@scope/name/-/`. */
export function tarballBase(repoUrl: string, name: string): string {
  return `${repoUrl}/${name}/-/`;
}

/** One version's manifest as served (`GET /REPO/name/1.0.0`). */
export function renderVersion(doc: PackDoc, version: string, repoUrl: string): Json {
  return withTarball(doc.json.versions[version], tarballBase(repoUrl, doc.json.name));
}

/**
 * The packument as sent: tarball URLs point at this server (`repoUrl`),
 * internal fields and attachments are dropped; `abbreviated` keeps what an
 * install needs. Cached per (document, form, repo URL).
 */
export function renderPackument(svc: Services, doc: PackDoc, name: string, repoUrl: string, abbreviated: boolean): RenderedDoc {
  const ck = doc.key ? renderKey(`${doc.key}|${abbreviated ? 'a' : 'f'}|${repoUrl}|${name}`) : undefined;
  const hit = ck ? (svc.parsedDocs.get(ck) as RenderedDoc | undefined) : undefined;
  if (hit) return hit;
  const base = tarballBase(repoUrl, name);
  const j = doc.json;
  const versions: Record<string, Manifest> = {};
  let out: Json;
  if (abbreviated) {
    for (const [v, m] of Object.entries(j.versions)) versions[v] = abbreviate(m, base);
    out = { name, 'dist-tags': j['dist-tags'], versions };
    const modified = j.time?.modified ?? j.modified;
    if (typeof modified === 'string') out.modified = modified;
  } else {
    for (const [v, m] of Object.entries(j.versions)) versions[v] = withTarball(m, base);
    out = {};
    for (const [k, v] of Object.entries(j)) if (!k.startsWith('_') || k === '_id' || k === '_rev') out[k] = v;
    out._id ??= name;
    out.name = name;
    out['dist-tags'] = j['dist-tags'];
    out.versions = versions;
  }
  const body = Buffer.from(JSON.stringify(out));
  docWork.renders++;
  let gz: Promise<Buffer> | undefined;
  const r: RenderedDoc = {
    body, etag: `"${createHash('sha256').update(body).digest('hex').slice(0, 40)}"`, gzipped: () => (gz ??= gzipAsync(body, { level: 6 })),
  };
  // Room for the gzip form too (JSON packuments compress about 8:1).
  if (ck) svc.parsedDocs.set(ck, r, Math.ceil(body.length * 1.15) + ck.length);
  return r;
}

/** Upstream URL of a package's packument: the registry root + the escaped name. */
export function packumentUrl(upstream: string, name: string): string {
  return `${upstream.replace(/\/*$/, '/')}${escapeName(name)}`;
}

/** Reads a local repo's package document (null: never published). */
export async function loadLocal(svc: Services, repo: RepoDef, name: string): Promise<PackDoc | null> {
  const rec = await svc.meta.files.get(repo.name, paths.doc(name));
  if (!rec) return null;
  const hit = svc.parsedDocs.get(parsedKey(rec.digest)) as PackDoc | undefined;
  if (hit) return hit;
  return parseStored(svc, await collect(await svc.blob.read(rec.digest)), name, rec.digest);
}

/**
 * null when a local repo does not hold `name`; but tarballs without their
 * document mean the document was lost (verify --repair drops rows whose blob
 * is gone): the name is still held here, so this is an error, not a miss.
 */
async function lostDocument(svc: Services, repo: RepoDef, name: string): Promise<null> {
  for await (const _ of svc.meta.files.list(repo.name, paths.prefix(name))) {
    throw new AppError('INTERNAL', `${repo.name} holds tarballs of ${name} but not its document`);
  }
  return null;
}

/**
 * Packuments of busy packages are far above a usual metadata cap (the full
 * document of `typescript` or `next` runs to tens of MiB, abbreviated ones to
 * several): allow at least 64 MiB, or limits.metadata_body when higher.
 */
export function packumentCap(svc: Services): number {
  return Math.max(svc.config.limits.metadata_body, 64 * 1024 * 1024);
}

/**
 * How each kind builds a package's packument (see repos/resolve.ts). A remote repo fetches and
 * keeps only the full document: the abbreviated form is rendered from it, so an install that asks
 * for both (npm 11 reads the full one, tarball lookups the abbreviated one) costs one upstream fetch.
 */
export function packumentSource(svc: Services, name: string): DocSource<PackDoc> {
  return {
    ref: {
      path: paths.doc(name),
      mutable: true,
      accept: 'application/json',
      contentType: 'application/json',
      rejectHtml: true,
      locate: (repo) => packumentUrl(svc.repos.upstreamSettings(repo).upstream, name),
    },
    packageName: name,
    maxBytes: packumentCap(svc),
    local: async (repo) => (await loadLocal(svc, repo, name)) ?? lostDocument(svc, repo, name),
    parseUpstream: (_repo, body, key) => parseStored(svc, body, name, key),
    known: (key) => svc.parsedDocs.get(parsedKey(key)) as PackDoc | undefined,
    merge: (_repo, parts) => mergeDocs(svc, name, parts),
  };
}
