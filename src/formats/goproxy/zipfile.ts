import type { Digest } from '../../lib/digest.js';
import { AppError } from '../../lib/errors.js';
import type { Services } from '../../repos/services.js';
import { MAX_ZIP_BYTES } from './zip-rules.js';

export { MAX_ZIP_BYTES };

// Pending lib/zip.ts and lib/dirhash.ts (landing on main).
export async function checkModuleZip(_svc: Services, _d: Digest, _size: number, _modulePath: string, _version: string): Promise<{ goMod: Buffer | null }> {
  throw new AppError('INTERNAL', 'module zip reading is not available yet');
}
export async function h1OfMod(_svc: Services, _d: Digest): Promise<string> {
  throw new AppError('INTERNAL', 'h1 is not available yet');
}
export async function h1OfModuleZip(_svc: Services, _d: Digest): Promise<string> {
  throw new AppError('INTERNAL', 'h1 is not available yet');
}
