import type { Digest } from '../../lib/digest.js';
import { hashGoMod, hashZip } from '../../lib/dirhash.js';
import { AppError } from '../../lib/errors.js';
import { collect } from '../../lib/streams.js';
import { openZip } from '../../lib/zip.js';
import type { Services } from '../../repos/services.js';
import { checkEntries, declaredModule, MAX_GO_MOD_BYTES, MAX_ZIP_BYTES } from './zip-rules.js';

export { MAX_ZIP_BYTES };

/** Entries a module zip may have (go's own zips stay far below; the central directory is read whole). */
const MAX_ENTRIES = 100_000;

/**
 * Checks a stored module zip against the module zip rules and the module path: read with ranged
 * reads (central directory, then go.mod alone, bounded). Returns the root go.mod (null for a
 * `+incompatible` version, which has none). Every refusal is 400 with go's reason.
 */
export async function checkModuleZip(svc: Services, d: Digest, size: number, modulePath: string, version: string): Promise<{ goMod: Buffer | null }> {
  const zip = await openZip(svc.blob, d, size, 'module zip', { maxEntries: MAX_ENTRIES });
  const facts = zip.entries.map((e) => ({ name: e.name, size: e.size, mode: e.isSymlink ? 0o120000 : e.unixMode, entry: e }));
  const { errors, goMod } = checkEntries(facts, modulePath, version);
  if (errors.length) throw new AppError('BAD_REQUEST', `invalid module zip: ${errors.join('; ')}`);
  const incompatible = version.endsWith('+incompatible');
  if (!goMod) {
    if (incompatible) return { goMod: null };
    throw new AppError('BAD_REQUEST', `invalid module zip: no go.mod at the root of ${modulePath}@${version}/`);
  }
  const entry = facts.find((f) => f === goMod)!.entry;
  const body = await zip.read(entry, MAX_GO_MOD_BYTES);
  if (incompatible) {
    throw new AppError('BAD_REQUEST', `invalid module zip: +incompatible version ${version} has a go.mod; a module with a go.mod needs the /v${version.slice(1).split('.')[0]} path suffix`);
  }
  const declared = declaredModule(body.toString('utf8'));
  if (declared !== modulePath) {
    throw new AppError('BAD_REQUEST', `invalid module zip: go.mod declares module ${declared ?? '(none)'}, not ${modulePath}`);
  }
  return { goMod: body };
}

/** `h1:` of a stored go.mod, as the checksum database records `<module> <version>/go.mod`. */
export async function h1OfMod(svc: Services, d: Digest): Promise<string> {
  return hashGoMod(await collect(await svc.blob.read(d), { max: MAX_GO_MOD_BYTES, what: 'go.mod' }));
}

/** `h1:` of a stored module zip (dirhash.HashZip), as the checksum database records `<module> <version>`. */
export async function h1OfModuleZip(svc: Services, d: Digest): Promise<string> {
  const stat = await svc.blob.stat(d);
  if (!stat) throw new AppError('INTERNAL', 'stored module zip is missing');
  return hashZip(await openZip(svc.blob, d, stat.size, 'module zip', { maxEntries: MAX_ENTRIES }), MAX_ZIP_BYTES);
}
