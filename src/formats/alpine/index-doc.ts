import { createSign } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { AppError } from '../../lib/errors.js';
import type { DerivedDoc } from '../../repos/derived.js';
import type { DocSource } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import { mergeEntries } from '../../repos/virtual.js';
import type { RepoDef } from '../../storage/meta/types.js';
import type { ApkInfo } from './apk.js';
import { signingKey, type SigningKey } from './keys.js';
import { readTar, TAR_END, tarEntry } from './tar.js';

export const INDEX_FILE = 'APKINDEX.tar.gz';
export const INDEX_TYPE = 'application/gzip';

/** One package as an APKINDEX lists it. */
export interface Entry {
  /** The index lines, in order (`C`, `P`, `V`...): unknown upstream fields are kept as they are. */
  fields: [string, string][];
  name: string;
  version: string;
  /** `C:`, the control stream's `Q1` checksum. */
  checksum: string;
  /** `S:`, the .apk's size. */
  size?: number;
  /** Virtual: the member whose entry won, which serves the package. */
  member?: string;
}

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._+-]*$/;
// apk's version syntax (apk-tools version.c).
const VERSION_RE = /^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*(~[0-9a-f]+)?(-r[0-9]+)?$/;
const ARCH_RE = /^[a-z0-9_]+$/;
const INDEX_CAP = 256 * 1024 * 1024;

export const isArch = (a: string) => ARCH_RE.test(a);

export function apkFileName(name: string, version: string): string {
  return `${name}-${version}.apk`;
}

/** `.PKGINFO` field -> APKINDEX letter, in the order apk writes them (after C, P, V, A, S). */
const PKGINFO_FIELDS: [string, string, boolean][] = [
  ['I', 'size', false], ['T', 'pkgdesc', false], ['U', 'url', false], ['L', 'license', false], ['o', 'origin', false],
  ['m', 'maintainer', false], ['t', 'builddate', false], ['c', 'commit', false],
  ['D', 'depend', true], ['p', 'provides', true], ['i', 'install_if', true], ['k', 'provider_priority', false],
];

/**
 * The index lines of an uploaded package, after checking what apk relies on: name, version and
 * arch present and well formed, and the file name `<pkgname>-<pkgver>.apk` in an `<arch>` (or
 * noarch) directory. Throws BAD_REQUEST otherwise.
 */
export function packageFields(info: ApkInfo, size: number, file: string, arch: string): [string, string][] {
  const one = (k: string) => info.pkginfo.get(k)?.[0];
  const name = one('pkgname');
  const version = one('pkgver');
  const pkgArch = one('arch');
  if (!name || !NAME_RE.test(name)) throw new AppError('BAD_REQUEST', `.PKGINFO has no valid pkgname (${JSON.stringify(name ?? null)})`);
  if (!version || !VERSION_RE.test(version)) throw new AppError('BAD_REQUEST', `.PKGINFO has no valid pkgver (${JSON.stringify(version ?? null)})`);
  if (file !== apkFileName(name, version)) {
    throw new AppError('BAD_REQUEST', `file name ${file} does not match the package's name and version (${apkFileName(name, version)})`);
  }
  if (!pkgArch || (pkgArch !== arch && pkgArch !== 'noarch')) throw new AppError('BAD_REQUEST', `package arch ${JSON.stringify(pkgArch ?? null)} does not belong under ${arch}/`);
  const fields: [string, string][] = [['C', info.checksum], ['P', name], ['V', version], ['A', pkgArch], ['S', String(size)]];
  for (const [letter, key, many] of PKGINFO_FIELDS) {
    const values = info.pkginfo.get(key);
    if (values?.length) fields.push([letter, many ? values.join(' ') : values[0]]);
  }
  return fields;
}

function toEntry(fields: [string, string][]): Entry | null {
  const get = (k: string) => fields.find((f) => f[0] === k)?.[1];
  const name = get('P');
  const version = get('V');
  const checksum = get('C');
  if (!name || !NAME_RE.test(name) || !version || !checksum || !/^Q1[A-Za-z0-9+/]{27}=$/.test(checksum)) return null;
  const size = Number(get('S'));
  return { fields, name, version, checksum, size: Number.isSafeInteger(size) && size >= 0 ? size : undefined };
}

function sorted(entries: Entry[]): Entry[] {
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.version < b.version ? -1 : a.version > b.version ? 1 : 0));
}

/** A local repo's packages in one `<branch>/<repo>/<arch>` directory, from the rows written at upload. */
export async function localEntries(svc: Services, repo: RepoDef, dir: string): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const f of svc.meta.files.list(repo.name, `${dir}/`)) {
    if (f.meta?.kind !== 'apk' || f.path.slice(dir.length + 1).includes('/')) continue;
    const e = toEntry(f.meta.fields as [string, string][]);
    if (e) out.push(e);
  }
  return sorted(out);
}

/** An APKINDEX.tar.gz (signature stream, then DESCRIPTION and APKINDEX): its entries; ones apk could not use are dropped. */
export function parseIndex(body: Buffer, what: string): Entry[] {
  let tar: Buffer;
  try {
    tar = gunzipSync(body, { maxOutputLength: INDEX_CAP });
  } catch (err) {
    throw new AppError('UPSTREAM_FAILED', `${what}: APKINDEX.tar.gz is not gzip: ${(err as Error).message}`);
  }
  let text: string | undefined;
  try {
    text = readTar(tar, what).find((e) => e.name === 'APKINDEX')?.data.toString('utf8');
  } catch (err) {
    throw new AppError('UPSTREAM_FAILED', (err as Error).message);
  }
  if (text === undefined) throw new AppError('UPSTREAM_FAILED', `${what}: APKINDEX.tar.gz has no APKINDEX`);
  const out: Entry[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const fields = block.split('\n').filter((l) => /^[A-Za-z]:/.test(l)).map((l): [string, string] => [l[0], l.slice(2)]);
    const e = toEntry(fields);
    if (e) out.push(e);
  }
  return out;
}

/**
 * APKINDEX.tar.gz as abuild-sign makes it: a gzip stream holding the tar entry
 * `.SIGN.RSA.<keyname>.rsa.pub` (RSA-SHA1, PKCS#1 v1.5, over the compressed bytes of the rest;
 * no tar end blocks, so apk reads on), then a gzip stream of the DESCRIPTION and APKINDEX tar.
 * Entry times are the newest build date, so the same entries and key give the same bytes.
 */
export function renderIndex(entries: Entry[], key: SigningKey, description: string): Buffer {
  let mtime = 0;
  const text = entries.map((e) => e.fields.map(([k, v]) => {
    if (k === 't' && Number(v) > mtime) mtime = Number(v);
    return `${k}:${v}\n`;
  }).join('') + '\n').join('');
  const index = gzipSync(Buffer.concat([tarEntry('DESCRIPTION', Buffer.from(description), mtime), tarEntry('APKINDEX', Buffer.from(text), mtime), TAR_END]), { level: 9 });
  const signature = createSign('sha1').update(index).sign(key.privateKey);
  return Buffer.concat([gzipSync(tarEntry(`.SIGN.RSA.${key.name}.rsa.pub`, signature, mtime), { level: 9 }), index]);
}

export function findEntry(entries: Entry[], file: string): Entry | undefined {
  return entries.find((e) => apkFileName(e.name, e.version) === file);
}

const description = (repo: RepoDef, dir: string) => `artifactapi ${repo.name}/${dir}`;

/** Signs a merged index with the virtual repo's own key. */
export async function renderSigned(svc: Services, repo: RepoDef, dir: string, entries: Entry[]): Promise<Buffer> {
  return renderIndex(entries, await signingKey(svc, repo), description(repo, dir));
}

/** The signed index a local repo keeps up to date for one `<branch>/<repo>/<arch>` directory (repos/derived.ts). */
export function localIndexDoc(dir: string): DerivedDoc {
  return {
    path: `${dir}/${INDEX_FILE}`,
    contentType: INDEX_TYPE,
    render: async (svc, repo) => renderSigned(svc, repo, dir, await localEntries(svc, repo, dir)),
  };
}

/** How each kind builds the entries of one directory's index (see repos/resolve.ts). */
export function indexSource(svc: Services, dir: string): DocSource<Entry[]> {
  return {
    ref: { path: `${dir}/${INDEX_FILE}`, mutable: true, contentType: INDEX_TYPE, rejectHtml: true },
    cacheAs: 'apk-index',
    maxBytes: Math.max(svc.config.limits.metadata_body, 64 * 1024 * 1024),
    local: async (repo) => {
      const entries = await localEntries(svc, repo, dir);
      return entries.length ? entries : null;
    },
    parseUpstream: (repo, body) => parseIndex(body, `upstream of ${repo.name}`),
    entries: { names: (entries) => entries.map((e) => e.name), without: (entries, names) => entries.filter((e) => !names.has(e.name)) },
    merge: (_repo, parts) => sorted(mergeEntries(parts.map((p) => ({ member: p.member, entries: p.doc })), (e) => e.name, (e) => e.version)),
  };
}
