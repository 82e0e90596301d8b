import * as openpgp from 'openpgp';
import { hexOf, sha256, type Digest } from '../../lib/digest.js';
import { AppError } from '../../lib/errors.js';
import { repoSecret } from '../../lib/secrets.js';
import type { DerivedPart } from '../../repos/derived.js';
import type { RepoDef } from '../../storage/meta/types.js';

export const ASC_PATH = 'repodata/repomd.xml.asc';
export const KEY_PATH = 'repodata/repomd.xml.key';
export const PGP_TYPE = 'application/pgp-signature';
export const PGP_KEY_TYPE = 'application/pgp-keys';

interface RepoKey {
  privateKey: openpgp.PrivateKey;
  fingerprint: string;
  publicArmored: string;
}

/** Decrypted keys by the sha256 of their armored text and passphrase, so each is parsed once. */
const parsed = new Map<string, RepoKey>();

/**
 * The repo's OpenPGP signing key (`gpg_key`, or `gpg_key_file` / `gpg_key_env`, lib/secrets.ts),
 * or null when it has none; a protected key needs `gpg_passphrase` (or its `_file` / `_env`).
 */
export async function repoKey(repo: RepoDef): Promise<RepoKey | null> {
  const armored = repoSecret(repo, 'gpg_key');
  if (!armored) return null;
  const passphrase = repoSecret(repo, 'gpg_passphrase');
  const id = sha256(Buffer.from(`${armored}\0${passphrase ?? ''}`));
  const hit = parsed.get(id);
  if (hit) return hit;
  // openpgp's messages may quote the key; only our own fixed text reaches the client and the log.
  let privateKey: openpgp.PrivateKey;
  try {
    privateKey = await openpgp.readPrivateKey({ armoredKey: armored });
  } catch {
    throw new AppError('INTERNAL', `${repo.name}: the gpg key is not an armored OpenPGP private key`);
  }
  if (!privateKey.isDecrypted()) {
    if (passphrase === undefined) throw new AppError('INTERNAL', `${repo.name}: the gpg key is protected; set gpg_passphrase (or gpg_passphrase_file / gpg_passphrase_env)`);
    try {
      privateKey = await openpgp.decryptKey({ privateKey, passphrase });
    } catch {
      throw new AppError('INTERNAL', `${repo.name}: the gpg key does not decrypt with the given gpg_passphrase`);
    }
  }
  const key = { privateKey, fingerprint: privateKey.getFingerprint(), publicArmored: privateKey.toPublic().armor() };
  if (parsed.size > 100) parsed.clear();
  parsed.set(id, key);
  return key;
}

/**
 * Where the signature of a repomd.xml by a key is stored: named by both, so it is written as a part
 * before repomd.xml is switched (a new generation never overwrites the signature the current one
 * is served with) and a changed key never finds a stale signature. gc reclaims the old ones.
 */
export function signaturePath(repomd: Digest, fingerprint: string): string {
  return `repodata/${hexOf(repomd)}-${fingerprint}-repomd.xml.asc`;
}

/** Whether a repodata row is a signature of the repomd.xml with this digest (gc keeps those). */
export function signsRepomd(path: string, repomd: Digest): boolean {
  return path.startsWith(`repodata/${hexOf(repomd)}-`) && path.endsWith('-repomd.xml.asc');
}

/** Detached armored signature of exactly these bytes. */
export async function signBytes(key: RepoKey, bytes: Buffer): Promise<Buffer> {
  const message = await openpgp.createMessage({ binary: bytes });
  return Buffer.from(await openpgp.sign({ message, signingKeys: key.privateKey, detached: true, format: 'armored' }));
}

/**
 * A rendered repodata generation with the signature of its repomd.xml added as a part when the
 * repo has a key: derived.ts stores parts before it switches repomd.xml, so the moment a reader
 * can get the new repomd.xml, its signature is already there.
 */
export async function withSignature(repo: RepoDef, r: { body: Buffer; parts: DerivedPart[] }): Promise<{ body: Buffer; parts: DerivedPart[] }> {
  const key = await repoKey(repo);
  if (!key) return r;
  return { body: r.body, parts: [...r.parts, { path: signaturePath(sha256(r.body), key.fingerprint), contentType: PGP_TYPE, body: await signBytes(key, r.body) }] };
}
