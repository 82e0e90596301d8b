import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { sha256 } from '../../lib/digest.js';
import { AppError } from '../../lib/errors.js';
import { repoSecret } from '../../lib/secrets.js';
import { collect } from '../../lib/streams.js';
import { writeLocalRow } from '../../repos/local.js';
import type { Services } from '../../repos/services.js';
import { ingestBuffer } from '../../storage/ingest.js';
import type { RepoDef } from '../../storage/meta/types.js';

/** Where a generated key is kept among the repo's rows: never a path the handler serves. */
export const KEY_ROW = '-/signing-key.pem';
const KEY_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;

export interface SigningKey {
  /** apk's key name: the index's `.SIGN.RSA.<name>.rsa.pub` and `/etc/apk/keys/<name>.rsa.pub`. */
  name: string;
  privateKey: KeyObject;
  publicPem: string;
}

/** Parsed keys by where their PEM came from (the option, or the stored row's digest). */
const parsed = new Map<string, SigningKey>();

function toKey(repo: RepoDef, pem: string, from: string): SigningKey {
  const hit = parsed.get(from);
  if (hit) return hit;
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch {
    throw new AppError('INTERNAL', `${repo.name}: the signing key is not a PEM private key`);
  }
  if (privateKey.asymmetricKeyType !== 'rsa') throw new AppError('INTERNAL', `${repo.name}: the signing key must be an RSA key`);
  const pub = createPublicKey(privateKey);
  const publicPem = pub.export({ type: 'spki', format: 'pem' }) as string;
  const optName = repo.options.key_name;
  const name = typeof optName === 'string' && optName ? optName
    : `${repo.name}-${sha256(pub.export({ type: 'spki', format: 'der' })).slice(7, 15)}`;
  if (!KEY_NAME_RE.test(name)) throw new AppError('INTERNAL', `${repo.name}: key_name ${JSON.stringify(name)} is not a valid key file name`);
  const key = { name, privateKey, publicPem };
  if (parsed.size > 1000) parsed.clear();
  parsed.set(from, key);
  return key;
}

/**
 * The repo's index signing key: the `signing_key` option (or `signing_key_file` / `_env`) when set, else
 * one generated at first need and stored as a row of the repo (blob + metadata store), so every
 * instance signs with the same key. Generation runs under the coordinator's lock.
 */
export async function signingKey(svc: Services, repo: RepoDef): Promise<SigningKey> {
  const o = repo.options;
  const id = `${repo.name}\0${String(o.key_name ?? '')}`;
  const pem = repoSecret(repo, 'signing_key');
  if (pem) return toKey(repo, pem, `${id}\0given\0${sha256(Buffer.from(pem))}`);
  const rec = (await svc.meta.files.get(repo.name, KEY_ROW)) ?? (await svc.coord.withLock(`alpine-key:${repo.name}`, async () => {
    const again = await svc.meta.files.get(repo.name, KEY_ROW);
    if (again) return again;
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = Buffer.from(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    let row!: Awaited<ReturnType<typeof writeLocalRow>>;
    // Checked again in the exclusive publishing transaction: without a shared lock (no Redis), an
    // instance that lost the race keeps the key that won; its own blob is left to gc.
    await ingestBuffer(svc, pem, async (m, w) => {
      row = (await m.files.get(repo.name, KEY_ROW))
        ?? (await writeLocalRow(m, repo, KEY_ROW, w.digest, w.size, { contentType: 'application/x-pem-file', meta: { kind: 'signing-key' } }));
    });
    return row;
  }));
  const from = `${id}\0row\0${rec.digest}`;
  if (parsed.has(from)) return parsed.get(from)!;
  return toKey(repo, (await collect(await svc.blob.read(rec.digest), { max: 64 * 1024, what: 'signing key' })).toString('utf8'), from);
}
