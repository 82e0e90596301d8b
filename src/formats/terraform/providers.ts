import type { Readable } from 'node:stream';
import { hexOf, sha256 } from '../../lib/digest.js';
import { AppError } from '../../lib/errors.js';
import { PGP_TYPE, repoKey, signBytes, verifyDetached } from '../../lib/pgp.js';
import type { DerivedDoc, DerivedPart } from '../../repos/derived.js';
import { recordLocalFile, writeLocalRow } from '../../repos/local.js';
import { byLeafKind, readCapped, resolveDoc, resolveFile, type DocSource } from '../../repos/resolve.js';
import { listingLeaf } from '../../repos/listed.js';
import type { Services } from '../../repos/services.js';
import type { Served, Source } from '../../repos/types.js';
import { mergeEntries } from '../../repos/virtual.js';
import { collect } from '../../lib/streams.js';
import { ingestBuffer, ingestStream } from '../../storage/ingest.js';
import type { RepoDef } from '../../storage/meta/types.js';
import { serviceBase } from './discovery.js';
import {
  byVersionDesc, checkPlatform, checkVersion, JSON_TYPE, upstreamJson, providerDir, zipFileName, zipPath, ZIP_TYPE, type ProviderAddr,
} from './names.js';
import { zipFacts } from './zipfacts.js';

const SUMS_TYPE = 'text/plain; charset=utf-8';
const SUMS_CAP = 1024 * 1024;
const PROTOCOL_RE = /^[0-9]+\.[0-9]+$/;

export interface Platform {
  os: string;
  arch: string;
}

/** One provider version as a versions list gives it, with where it came from. */
export interface VersionEntry {
  version: string;
  protocols: string[];
  platforms: Platform[];
  /** Published in a local repo (the shadowing rule of virtual repos). */
  local: boolean;
  /** Virtual: the leaf repo that serves this version. */
  member?: string;
}

/** What a provider's rows carry (meta.kind === 'provider'). */
interface ProviderRow {
  kind: 'provider';
  version: string;
  os: string;
  arch: string;
  protocols: string[];
  h1?: string;
}

/** A platform package of a provider version, with the paths (under the serving repo) of its files. */
export interface Download {
  protocols: string[];
  os: string;
  arch: string;
  filename: string;
  /** sha256 hex of the zip. */
  shasum: string;
  zip: string;
  sums?: string;
  sig?: string;
  signingKeys?: unknown;
  /** Go's dirhash of the zip's contents (`h1:…`), when known. */
  h1?: string;
}

/** The download JSON of terraform's provider registry protocol, links under `base` (the repo URL the client used). */
export function renderDownload(d: Download, base: string): Record<string, unknown> {
  return {
    protocols: d.protocols, os: d.os, arch: d.arch, filename: d.filename,
    download_url: `${base}/${d.zip}`, shasums_url: `${base}/${d.sums}`, shasums_signature_url: `${base}/${d.sig}`,
    shasum: d.shasum, signing_keys: d.signingKeys,
  };
}

export function renderVersions(entries: VersionEntry[]): Record<string, unknown> {
  return { versions: entries.map((e) => ({ version: e.version, protocols: e.protocols, platforms: e.platforms.map((p) => ({ os: p.os, arch: p.arch })) })) };
}

async function localVersions(svc: Services, repo: RepoDef, p: ProviderAddr): Promise<VersionEntry[] | null> {
  const byVersion = new Map<string, VersionEntry>();
  for await (const f of svc.meta.files.list(repo.name, `${providerDir(p)}/`)) {
    const m = f.meta as ProviderRow | undefined;
    if (m?.kind !== 'provider') continue;
    let e = byVersion.get(m.version);
    if (!e) byVersion.set(m.version, (e = { version: m.version, protocols: [], platforms: [], local: true }));
    for (const proto of m.protocols) if (!e.protocols.includes(proto)) e.protocols.push(proto);
    e.platforms.push({ os: m.os, arch: m.arch });
  }
  if (byVersion.size === 0) return null;
  const list = [...byVersion.values()].sort(byVersionDesc);
  for (const e of list) {
    e.protocols.sort();
    e.platforms.sort((a, b) => `${a.os}_${a.arch}`.localeCompare(`${b.os}_${b.arch}`));
  }
  return list;
}

function parseUpstreamVersions(body: Buffer, what: string): VersionEntry[] {
  const doc = upstreamJson(body, what) as { versions?: unknown };
  if (!doc || !Array.isArray(doc.versions)) throw new AppError('UPSTREAM_FAILED', `${what} has no versions list`);
  const out: VersionEntry[] = [];
  for (const v of doc.versions as Record<string, unknown>[]) {
    if (!v || typeof v.version !== 'string') continue;
    try {
      checkVersion(v.version);
    } catch {
      continue;
    }
    const protocols = Array.isArray(v.protocols) ? v.protocols.filter((x): x is string => typeof x === 'string') : [];
    const platforms = Array.isArray(v.platforms)
      ? (v.platforms as Record<string, unknown>[]).filter((x) => x && typeof x.os === 'string' && typeof x.arch === 'string').map((x) => ({ os: x.os as string, arch: x.arch as string }))
      : [];
    out.push({ version: v.version, protocols, platforms, local: false });
  }
  return out.sort(byVersionDesc);
}

/** A provider's versions list for each kind: local rows, the upstream's (TTL), or the members' merged. */
export function versionsSource(svc: Services, p: ProviderAddr): DocSource<VersionEntry[]> {
  return {
    // A provider a local member publishes hides remote versions of it (repos/resolve.ts).
    packageName: `${p.namespace}/${p.type}`,
    ref: {
      path: `${providerDir(p)}/versions`, mutable: true, contentType: JSON_TYPE,
      locate: async (repo) => `${await serviceBase(svc, repo, 'providers.v1')}${p.namespace}/${p.type}/versions`,
    },
    local: (repo) => localVersions(svc, repo, p),
    parseUpstream: (repo, body) => parseUpstreamVersions(body, `${repo.name}: upstream versions of ${p.namespace}/${p.type}`),
    // First member wins per version; a provider a local member publishes hides remote versions of it.
    merge: (repo, parts) => mergeEntries(parts.map((x) => ({ member: x.member, entries: x.doc })), () => `${p.namespace}/${p.type}`, (e) => e.version)
      .sort(byVersionDesc),
  };
}

/** The leaf repo (local or remote) that serves this version of a provider through `repo` (repos/listed.ts). */
function leafFor(svc: Services, repo: RepoDef, p: ProviderAddr, version: string): Promise<RepoDef> {
  return listingLeaf(svc, repo, versionsSource(svc, p), (doc) => doc.find((e) => e.version === version)?.member, `${p.namespace}/${p.type} ${version}`);
}

// ---- local: SHA256SUMS derived on every upload, signed with the repo's key ----

const sumsDir = (p: ProviderAddr, version: string, hex: string) => `${providerDir(p)}/${version}/sums/${hex}`;
const sigPath = (p: ProviderAddr, version: string, hex: string, fingerprint: string) => `${sumsDir(p, version, hex)}/SHA256SUMS.${fingerprint}.sig`;

/**
 * A local version's SHA256SUMS, derived from its rows. The current one is the switch row
 * (`<version>/SHA256SUMS`); each generation is also stored under its own digest with its
 * signature (parts, stored first), and the download JSON names those, so a client that read
 * the JSON always gets the SHA256SUMS and signature that belong together.
 */
export function sumsDoc(p: ProviderAddr, version: string): DerivedDoc {
  return {
    path: `${providerDir(p)}/${version}/SHA256SUMS`,
    contentType: SUMS_TYPE,
    async render(svc, repo) {
      const lines: string[] = [];
      for await (const f of svc.meta.files.list(repo.name, `${providerDir(p)}/${version}/`)) {
        const m = f.meta as ProviderRow | undefined;
        if (m?.kind === 'provider' && m.version === version) lines.push(`${hexOf(f.digest)}  ${zipFileName(p, version, m.os, m.arch)}\n`);
      }
      const body = Buffer.from(lines.sort((a, b) => a.slice(66).localeCompare(b.slice(66))).join(''));
      const hex = hexOf(sha256(body));
      const parts: DerivedPart[] = [{ path: `${sumsDir(p, version, hex)}/SHA256SUMS`, contentType: SUMS_TYPE, body }];
      const key = await repoKey(repo);
      if (key) parts.push({ path: sigPath(p, version, hex, key.fingerprint), contentType: PGP_TYPE, body: await signBytes(key, body, 'binary') });
      return { body, parts };
    },
  };
}

async function localDownload(svc: Services, repo: RepoDef, p: ProviderAddr, version: string, os: string, arch: string, signed: boolean): Promise<Download> {
  const rec = await svc.meta.files.get(repo.name, zipPath(p, version, os, arch));
  const m = rec?.meta as ProviderRow | undefined;
  if (!rec || m?.kind !== 'provider') throw new AppError('NOT_FOUND', `${p.namespace}/${p.type} ${version} for ${os}_${arch} not found in ${repo.name}`);
  const d: Download = { protocols: m.protocols, os, arch, filename: zipFileName(p, version, os, arch), shasum: hexOf(rec.digest), zip: rec.path, h1: m.h1 };
  if (!signed) return d;
  const key = await repoKey(repo);
  if (!key) {
    throw new AppError('NOT_FOUND', `${repo.name} has no gpg key (gpg_key_file or gpg_key_env), so it cannot serve signed provider downloads; use it as a network mirror`);
  }
  const sums = await svc.derived.current(svc, repo, sumsDoc(p, version));
  const hex = hexOf(sums.digest);
  const sums2 = `${sumsDir(p, version, hex)}/SHA256SUMS`;
  const sig = sigPath(p, version, hex, key.fingerprint);
  // Normally stored with the generation; made here when the key was set (or changed) after it.
  if (!(await svc.meta.files.get(repo.name, sums2))) await recordLocalFile(svc, repo, sums2, sums.digest, sums.size, { contentType: SUMS_TYPE, meta: { kind: 'derived' } });
  if (!(await svc.meta.files.get(repo.name, sig))) {
    const body = await signBytes(key, await collect(await svc.blob.read(sums.digest), { max: SUMS_CAP }), 'binary');
    await ingestBuffer(svc, body, (mt, w) => writeLocalRow(mt, repo, sig, w.digest, w.size, { contentType: PGP_TYPE, meta: { kind: 'derived' } }));
  }
  const signingKeys = { gpg_public_keys: [{ key_id: key.keyId, ascii_armor: key.publicArmored, trust_signature: '', source: 'artifactapi', source_url: null }] };
  return { ...d, sums: sums2, sig, signingKeys };
}

/**
 * Stores an uploaded provider package: streamed into the blob store, then read back (bounded,
 * entry by entry) to check it is a zip and compute its `h1:` hash; only then the row is written
 * and SHA256SUMS regenerated and signed. A refused upload leaves an unreferenced blob for gc.
 */
export async function saveProvider(svc: Services, repo: RepoDef, p: ProviderAddr, version: string, os: string, arch: string,
  src: Readable, protocols: string[]): Promise<Record<string, unknown>> {
  checkVersion(version, 'BAD_REQUEST');
  checkPlatform(os, arch, 'BAD_REQUEST');
  for (const proto of protocols) if (!PROTOCOL_RE.test(proto)) throw new AppError('BAD_REQUEST', `invalid protocol version ${JSON.stringify(proto)} (e.g. 5.0)`);
  await repoKey(repo); // a key that cannot be used fails the write before anything changes
  const path = zipPath(p, version, os, arch);
  if (await svc.meta.files.get(repo.name, path)) throw new AppError('CONFLICT', `${path} already exists in ${repo.name} and cannot be overwritten`);
  const w = await ingestStream(svc, src, { maxSize: svc.config.uploads.max_size || undefined });
  const facts = await zipFacts(svc, w.digest, w.size, 'provider package', { h1: true });
  const meta: ProviderRow = { kind: 'provider', version, os, arch, protocols, ...(facts.h1 ? { h1: facts.h1 } : {}) };
  await recordLocalFile(svc, repo, path, w.digest, w.size, { contentType: ZIP_TYPE, meta: { ...meta }, immutable: true });
  await svc.derived.refresh(svc, repo, sumsDoc(p, version));
  return { namespace: p.namespace, type: p.type, version, os, arch, filename: zipFileName(p, version, os, arch), shasum: hexOf(w.digest), size: w.size };
}

// ---- remote: the upstream's download JSON, SHA256SUMS checked against its signature ----

interface UpstreamDownload {
  protocols: string[];
  filename: string;
  shasum: string;
  downloadUrl: string;
  shasumsUrl: string;
  signatureUrl: string;
  signingKeys: { gpg_public_keys: { ascii_armor: string }[] } & Record<string, unknown>;
}

function parseUpstreamDownload(body: Buffer, what: string): UpstreamDownload {
  const d = upstreamJson(body, what) as Record<string, unknown>;
  const str = (k: string) => {
    if (!d || typeof d[k] !== 'string' || !d[k]) throw new AppError('UPSTREAM_FAILED', `${what} has no ${k}`);
    return d[k] as string;
  };
  const shasum = str('shasum').toLowerCase();
  if (!/^[a-f0-9]{64}$/.test(shasum)) throw new AppError('UPSTREAM_FAILED', `${what}: shasum is not a sha256`);
  const keys = d.signing_keys as UpstreamDownload['signingKeys'] | undefined;
  if (!keys || !Array.isArray(keys.gpg_public_keys)) throw new AppError('UPSTREAM_FAILED', `${what} lists no signing keys`);
  const filename = str('filename');
  if (filename.includes('/')) throw new AppError('UPSTREAM_FAILED', `${what}: filename has a slash`);
  return {
    protocols: Array.isArray(d.protocols) ? d.protocols.filter((x): x is string => typeof x === 'string') : [],
    filename, shasum, downloadUrl: str('download_url'), shasumsUrl: str('shasums_url'), signatureUrl: str('shasums_signature_url'), signingKeys: keys,
  };
}

async function upstreamDownloadUrl(svc: Services, repo: RepoDef, p: ProviderAddr, version: string, os: string, arch: string): Promise<string> {
  return `${await serviceBase(svc, repo, 'providers.v1')}${p.namespace}/${p.type}/${version}/download/${os}/${arch}`;
}

async function upstreamDownload(svc: Services, repo: RepoDef, p: ProviderAddr, version: string, os: string, arch: string): Promise<UpstreamDownload> {
  return (await upstreamDownloadDoc(svc, repo, p, version, os, arch)).doc;
}

function upstreamDownloadDoc(svc: Services, repo: RepoDef, p: ProviderAddr, version: string, os: string, arch: string) {
  const what = `${repo.name}: upstream download of ${p.namespace}/${p.type} ${version} ${os}_${arch}`;
  const src: DocSource<UpstreamDownload> = {
    ref: { path: `${providerDir(p)}/${version}/download/${os}/${arch}`, mutable: true, contentType: JSON_TYPE, locate: () => upstreamDownloadUrl(svc, repo, p, version, os, arch) },
    local: async () => null,
    parseUpstream: (_r, body) => parseUpstreamDownload(body, what),
    merge: (_r, parts) => parts[0].doc,
  };
  return resolveDoc(svc, repo, src);
}

/** An URL the upstream's download JSON gives, made absolute against where that JSON came from. */
async function absolute(svc: Services, repo: RepoDef, p: ProviderAddr, version: string, os: string, arch: string, url: string): Promise<string> {
  const u = new URL(url, await upstreamDownloadUrl(svc, repo, p, version, os, arch));
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new AppError('UPSTREAM_FAILED', `${repo.name}: upstream names a non-http URL`);
  return u.toString();
}

const remoteSumsPath = (p: ProviderAddr, version: string, os: string, arch: string, sig: boolean) => `${providerDir(p)}/${version}/${os}_${arch}/SHA256SUMS${sig ? '.sig' : ''}`;

function remoteSumsFile(svc: Services, repo: RepoDef, p: ProviderAddr, version: string, os: string, arch: string, sig: boolean): Promise<Served> {
  return resolveFile(svc, repo, {
    path: remoteSumsPath(p, version, os, arch, sig), rejectHtml: true, contentType: sig ? PGP_TYPE : SUMS_TYPE,
    locate: async () => {
      const d = await upstreamDownload(svc, repo, p, version, os, arch);
      return absolute(svc, repo, p, version, os, arch, sig ? d.signatureUrl : d.shasumsUrl);
    },
  });
}

/** Parses SHA256SUMS (`<hex>  <file>` lines; `*` marks binary mode). */
export function parseSums(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([a-fA-F0-9]{64}) [ *]?(\S+)\s*$/.exec(line);
    if (m) out.set(m[2], m[1].toLowerCase());
  }
  return out;
}

/**
 * Before a remote zip is fetched: the upstream's SHA256SUMS must carry a signature by one of the
 * keys its download JSON lists, and must give the zip the same sha256 as the JSON does (which the
 * fill then checks the bytes against). Otherwise nothing is fetched or cached: 502.
 */
async function verifiedShasum(svc: Services, repo: RepoDef, p: ProviderAddr, version: string, os: string, arch: string, d: UpstreamDownload): Promise<void> {
  const sums = await readCapped(svc, await remoteSumsFile(svc, repo, p, version, os, arch, false), SUMS_CAP);
  const sig = await readCapped(svc, await remoteSumsFile(svc, repo, p, version, os, arch, true), SUMS_CAP);
  const keys = d.signingKeys.gpg_public_keys.map((k) => k?.ascii_armor).filter((k): k is string => typeof k === 'string');
  if (!(await verifyDetached(keys, sig, sums))) {
    throw new AppError('UPSTREAM_FAILED', `the upstream's SHA256SUMS for ${p.namespace}/${p.type} ${version} is not signed by a key it lists`);
  }
  const listed = parseSums(sums.toString('utf8')).get(d.filename);
  if (listed !== d.shasum) throw new AppError('UPSTREAM_FAILED', `the upstream's SHA256SUMS does not list ${d.filename} with the shasum its download JSON gives`);
}

async function remoteDownload(svc: Services, repo: RepoDef, p: ProviderAddr, version: string, os: string, arch: string): Promise<Download & { source: Source }> {
  const { doc: d, source } = await upstreamDownloadDoc(svc, repo, p, version, os, arch);
  return {
    source,
    protocols: d.protocols, os, arch, filename: d.filename, shasum: d.shasum, zip: zipPath(p, version, os, arch),
    sums: remoteSumsPath(p, version, os, arch, false), sig: remoteSumsPath(p, version, os, arch, true), signingKeys: d.signingKeys,
  };
}

function remoteZip(svc: Services, repo: RepoDef, p: ProviderAddr, version: string, os: string, arch: string): Promise<Served> {
  return upstreamDownload(svc, repo, p, version, os, arch).then((d) => resolveFile(svc, repo, {
    path: zipPath(p, version, os, arch), rejectHtml: true, contentType: ZIP_TYPE,
    expect: { digest: `sha256:${d.shasum}` },
    locate: async () => {
      await verifiedShasum(svc, repo, p, version, os, arch, d);
      return absolute(svc, repo, p, version, os, arch, d.downloadUrl);
    },
  }));
}

// ---- every kind ----

/**
 * A platform package's download facts through any repo. `signed`: with SHA256SUMS and its
 * signature (the registry protocol); the network mirror needs only the zip and its hashes.
 */
export async function providerDownload(svc: Services, repo: RepoDef, p: ProviderAddr, version: string, os: string, arch: string,
  o: { signed: boolean }): Promise<Download & { servedBy: string; source: Source }> {
  checkVersion(version);
  checkPlatform(os, arch);
  const leaf = await leafFor(svc, repo, p, version);
  const d = await byLeafKind<Promise<Download & { source: Source }>>(leaf, {
    local: async (l) => ({ ...(await localDownload(svc, l, p, version, os, arch, o.signed)), source: 'local' }),
    remote: (l) => remoteDownload(svc, l, p, version, os, arch),
  });
  return { ...d, servedBy: leaf.name };
}

/** A file under `<version>/` of a provider (zip, SHA256SUMS, signature) through any repo. */
export async function providerFile(svc: Services, repo: RepoDef, p: ProviderAddr, version: string, rest: string): Promise<Served> {
  checkVersion(version);
  return byLeafKind(await leafFor(svc, repo, p, version), {
    local: (leaf) => resolveFile(svc, leaf, { path: `${providerDir(p)}/${version}/${rest}` }),
    remote: (leaf) => remoteProviderFile(svc, leaf, p, version, rest),
  });
}

function remoteProviderFile(svc: Services, leaf: RepoDef, p: ProviderAddr, version: string, rest: string): Promise<Served> {
  const zip = /^([a-z0-9]+)_([a-z0-9]+)\.zip$/.exec(rest);
  if (zip) return remoteZip(svc, leaf, p, version, zip[1], zip[2]);
  const sums = /^([a-z0-9]+)_([a-z0-9]+)\/SHA256SUMS(\.sig)?$/.exec(rest);
  if (sums) return remoteSumsFile(svc, leaf, p, version, sums[1], sums[2], Boolean(sums[3]));
  throw new AppError('NOT_FOUND', `${rest} is not a file of ${p.namespace}/${p.type} ${version}`);
}
