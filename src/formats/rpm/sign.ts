import { hexOf, sha256, type Digest } from '../../lib/digest.js';
import { PGP_TYPE, repoKey, signBytes } from '../../lib/pgp.js';
import type { DerivedPart } from '../../repos/derived.js';
import type { RepoDef } from '../../storage/meta/types.js';

export const ASC_PATH = 'repodata/repomd.xml.asc';
export const KEY_PATH = 'repodata/repomd.xml.key';

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
