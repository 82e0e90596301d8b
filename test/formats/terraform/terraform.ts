import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import * as openpgp from 'openpgp';
import tar from 'tar-stream';
import { which } from '../../helpers/which.js';
import { makeZip } from '../../helpers/zip.js';

export { makeZip };

export const HAVE_GPG = which('gpg') && which('unzip');

export const sha256hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A provider package as terraform expects it: one executable `terraform-provider-<type>_v<version>`. */
export function providerZip(type: string, version: string, marker = ''): Buffer {
  return makeZip({ [`terraform-provider-${type}_v${version}`]: `#!/bin/sh\necho ${type} ${version} ${marker}\n` });
}

/** A module .tar.gz with these files (names as given, so tests can put `../x` in). */
export async function moduleTgz(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, body] of Object.entries(files)) pack.entry({ name, mode: 0o644 }, body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

export async function gpgKey(name: string): Promise<{ privateKey: string; publicKey: string }> {
  return openpgp.generateKey({ type: 'rsa', rsaBits: 2048, userIDs: [{ name, email: `${name}@example.org` }], format: 'armored' });
}

export async function detachedSig(privateKey: string, data: Buffer): Promise<Buffer> {
  const key = await openpgp.readPrivateKey({ armoredKey: privateKey });
  const message = await openpgp.createMessage({ binary: data });
  return Buffer.from(await openpgp.sign({ message, signingKeys: key, detached: true, format: 'binary' }));
}

export async function keyIdOf(armored: string): Promise<string> {
  return (await (await openpgp.readKey({ armoredKey: armored })).getSigningKey()).getKeyID().toHex().toUpperCase();
}

/**
 * What terraform does with `signing_keys`: `gpg --verify` of the detached signature over
 * SHA256SUMS in a fresh keyring holding only the listed key. Returns the long key id that made
 * the valid signature; throws when gpg does not accept it.
 */
export function gpgVerify(publicKey: string, sig: Buffer, data: Buffer): string {
  const home = mkdtempSync(join(tmpdir(), 'tf-gnupg-'));
  try {
    mkdirSync(join(home, 'g'), { mode: 0o700 });
    const g = join(home, 'g');
    writeFileSync(join(home, 'key.asc'), publicKey);
    writeFileSync(join(home, 'SHA256SUMS.sig'), sig);
    writeFileSync(join(home, 'SHA256SUMS'), data);
    execFileSync('gpg', ['--homedir', g, '--batch', '--quiet', '--import', join(home, 'key.asc')], { stdio: 'pipe' });
    const status = execFileSync('gpg', ['--homedir', g, '--batch', '--status-fd', '1', '--verify', join(home, 'SHA256SUMS.sig'), join(home, 'SHA256SUMS')],
      { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    const m = /\[GNUPG:\] VALIDSIG ([0-9A-F]+)/.exec(status);
    if (!m) throw new Error(`gpg did not accept the signature: ${status}`);
    return m[1].slice(-16);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

export async function getBytes(url: string, init?: RequestInit): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const res = await fetch(url, init);
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

export interface InitResult {
  download: Record<string, unknown>;
  zip: Buffer;
  sums: Buffer;
  keyId: string;
}

/**
 * The requests `terraform init` makes for one provider through a registry host, checked as
 * terraform checks them: discovery, versions (version and platform listed), the download JSON,
 * SHA256SUMS and its signature (gpg, against the key the JSON lists), the zip's sha256 against
 * SHA256SUMS and the JSON's `shasum`.
 */
export async function replayProviderInit(o: { host: string; discoveryPath?: string; providersBase?: string; ns: string; type: string; version: string; os: string; arch: string }): Promise<InitResult> {
  let base = o.providersBase;
  if (!base) {
    const disco = await fetch(`${o.host}/.well-known/terraform.json`);
    if (disco.status !== 200) throw new Error(`discovery: ${disco.status}`);
    base = new URL((await disco.json())['providers.v1'], `${o.host}/`).toString();
  }
  const versions = await fetch(`${base}${o.ns}/${o.type}/versions`);
  if (versions.status !== 200) throw new Error(`versions: ${versions.status} ${await versions.text()}`);
  const list = (await versions.json()).versions as { version: string; platforms: { os: string; arch: string }[] }[];
  const v = list.find((x) => x.version === o.version);
  if (!v || !v.platforms.some((p) => p.os === o.os && p.arch === o.arch)) throw new Error(`versions list lacks ${o.version} ${o.os}_${o.arch}: ${JSON.stringify(list)}`);
  const dl = await fetch(`${base}${o.ns}/${o.type}/${o.version}/download/${o.os}/${o.arch}`);
  if (dl.status !== 200) throw new Error(`download: ${dl.status} ${await dl.text()}`);
  const download = (await dl.json()) as Record<string, any>;
  const sums = await getBytes(download.shasums_url);
  if (sums.status !== 200) throw new Error(`shasums: ${sums.status}`);
  const sig = await getBytes(download.shasums_signature_url);
  if (sig.status !== 200) throw new Error(`signature: ${sig.status}`);
  const keys = download.signing_keys.gpg_public_keys as { key_id: string; ascii_armor: string }[];
  let keyId = '';
  let lastErr: unknown;
  for (const k of keys) {
    try {
      keyId = gpgVerify(k.ascii_armor, sig.body, sums.body);
      break;
    } catch (err) {
      lastErr = err;
    }
  }
  if (!keyId) throw new Error(`no listed key verifies SHA256SUMS: ${String(lastErr)}`);
  const line = sums.body.toString('utf8').split('\n').find((l) => l.endsWith(`  ${download.filename}`));
  if (!line) throw new Error(`SHA256SUMS does not list ${download.filename}`);
  if (line.slice(0, 64) !== download.shasum) throw new Error('SHA256SUMS and download JSON disagree');
  const zip = await getBytes(download.download_url);
  if (zip.status !== 200) throw new Error(`zip: ${zip.status}`);
  if (sha256hex(zip.body) !== download.shasum) throw new Error('zip does not match shasum');
  return { download, zip: zip.body, sums: sums.body, keyId };
}

/**
 * terraform's network mirror installer: `index.json`, `<version>.json`, then the zip its `url`
 * names (relative to the version document), checked against the `zh:` hash (and `h1:` once the
 * dirhash is available: `h1` returns what to expect).
 */
export async function replayMirror(o: { mirror: string; hostname: string; ns: string; type: string; version: string; platform: string }) {
  const index = await fetch(`${o.mirror}/${o.hostname}/${o.ns}/${o.type}/index.json`);
  if (index.status !== 200) throw new Error(`index.json: ${index.status} ${await index.text()}`);
  const versions = (await index.json()).versions as Record<string, unknown>;
  if (!(o.version in versions)) throw new Error(`index.json lacks ${o.version}: ${JSON.stringify(versions)}`);
  const vurl = `${o.mirror}/${o.hostname}/${o.ns}/${o.type}/${o.version}.json`;
  const vres = await fetch(vurl);
  if (vres.status !== 200) throw new Error(`${o.version}.json: ${vres.status} ${await vres.text()}`);
  const archive = (await vres.json()).archives[o.platform] as { url: string; hashes: string[] };
  const zip = await getBytes(new URL(archive.url, vurl).toString());
  if (zip.status !== 200) throw new Error(`zip: ${zip.status}`);
  const zh = archive.hashes.find((h) => h.startsWith('zh:'));
  if (zh !== `zh:${sha256hex(zip.body)}`) throw new Error(`zh: hash ${zh} does not match the zip`);
  const h1 = archive.hashes.find((h) => h.startsWith('h1:'));
  if (h1 !== undefined && h1 !== expectedH1(zip.body)) throw new Error(`h1: hash ${h1} does not match the zip's contents`);
  return { versions, archive, zip: zip.body };
}

/**
 * The `h1:` terraform computes for a provider package, found independently of the server's zip
 * reader: `unzip` it, then Go's dirhash.Hash1 over the unpacked tree (HashDir with no prefix).
 */
export function expectedH1(zip: Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), 'tf-h1-'));
  try {
    writeFileSync(join(dir, 'p.zip'), zip);
    execFileSync('unzip', ['-q', join(dir, 'p.zip'), '-d', join(dir, 'x')]);
    const names: string[] = [];
    const walk = (rel: string) => {
      for (const n of readdirSync(join(dir, 'x', rel))) {
        const r = rel ? `${rel}/${n}` : n;
        if (statSync(join(dir, 'x', r)).isDirectory()) walk(r);
        else names.push(r);
      }
    };
    walk('');
    names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const summary = names.map((n) => `${sha256hex(readFileSync(join(dir, 'x', n)))}  ${n}\n`).join('');
    return `h1:${createHash('sha256').update(summary).digest('base64')}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
