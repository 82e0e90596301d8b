import * as openpgp from 'openpgp';
import type { KeySpecs } from '../config/schema.js';
import { sha256 } from './digest.js';
import { AppError } from './errors.js';
import { repoSecret } from './secrets.js';

export const PGP_TYPE = 'application/pgp-signature';
export const PGP_KEY_TYPE = 'application/pgp-keys';

/** The repo options of a format that signs with OpenPGP (rpm, terraform); `signs` says what for the docs. */
export function pgpOptions(signs: string) {
  return {
    gpg_key: { type: 'string', default: undefined, secret: true, doc: `armored OpenPGP private key that signs ${signs}` },
    gpg_passphrase: { type: 'string', default: undefined, secret: true, doc: 'the passphrase of a protected gpg_key' },
  } satisfies KeySpecs;
}

/** A repo's decrypted OpenPGP signing key. */
export interface RepoKey {
  privateKey: openpgp.PrivateKey;
  fingerprint: string;
  /** The long key id (16 hex digits, upper case), as terraform lists it. */
  keyId: string;
  publicArmored: string;
}

/** What the key options are read from: a repo definition (structurally). */
export interface KeyOwner {
  name: string;
  options: Record<string, unknown>;
}

/** Decrypted keys by the sha256 of their armored text and passphrase, so each is parsed once. */
const parsed = new Map<string, RepoKey>();

/**
 * The repo's OpenPGP signing key (`gpg_key`, or `gpg_key_file` / `gpg_key_env`, lib/secrets.ts),
 * or null when it has none; a protected key needs `gpg_passphrase` (or its `_file` / `_env`).
 */
export async function repoKey(repo: KeyOwner): Promise<RepoKey | null> {
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
  const signing = await privateKey.getSigningKey();
  const key = {
    privateKey, fingerprint: privateKey.getFingerprint(), keyId: signing.getKeyID().toHex().toUpperCase(),
    publicArmored: privateKey.toPublic().armor(),
  };
  if (parsed.size > 100) parsed.clear();
  parsed.set(id, key);
  return key;
}

/** Detached signature of exactly these bytes: armored (rpm's .asc), or binary (terraform's SHA256SUMS.sig). */
export async function signBytes(key: RepoKey, bytes: Buffer, format: 'armored' | 'binary' = 'armored'): Promise<Buffer> {
  const message = await openpgp.createMessage({ binary: bytes });
  if (format === 'binary') {
    return Buffer.from(await openpgp.sign({ message, signingKeys: key.privateKey, detached: true, format: 'binary' }));
  }
  return Buffer.from(await openpgp.sign({ message, signingKeys: key.privateKey, detached: true, format: 'armored' }));
}

/**
 * Whether `signature` (binary or armored, detached) over `data` was made by one of the armored
 * public keys. Unreadable keys or signatures count as not verified; never throws.
 */
export async function verifyDetached(armoredKeys: string[], signature: Buffer, data: Buffer): Promise<boolean> {
  const keys: openpgp.PublicKey[] = [];
  for (const armoredKey of armoredKeys) {
    try {
      keys.push(...(await openpgp.readKeys({ armoredKeys: armoredKey })));
    } catch {
      // not a key: skipped
    }
  }
  if (keys.length === 0) return false;
  try {
    const text = signature.toString('latin1');
    const sig = text.includes('-----BEGIN PGP SIGNATURE-----')
      ? await openpgp.readSignature({ armoredSignature: text })
      : await openpgp.readSignature({ binarySignature: new Uint8Array(signature) });
    const message = await openpgp.createMessage({ binary: new Uint8Array(data) });
    const result = await openpgp.verify({ message, signature: sig, verificationKeys: keys });
    for (const s of result.signatures) {
      try {
        await s.verified;
        return true;
      } catch {
        // next
      }
    }
    return false;
  } catch {
    return false;
  }
}
