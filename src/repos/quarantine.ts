import { join } from 'node:path';
import type { Digest } from '../lib/digest.js';
import type { Services } from './services.js';

/**
 * A blob whose bytes no longer match its digest: moved aside under
 * data_dir/quarantine (or deleted, for stores without a local path), and
 * remote repos' rows dropped so the next request refetches it from the
 * upstream. Local rows stay for `verify --repair` to report and drop.
 */
export async function quarantineBlob(svc: Services, d: Digest): Promise<void> {
  svc.log.error({ digest: d }, 'blob failed verification; quarantined');
  await svc.blob.quarantine(d, join(svc.config.data_dir, 'quarantine'));
  for (const f of await svc.meta.files.byDigest(d)) {
    if (f.source === 'remote') await svc.meta.files.remove(f.repo, f.path);
  }
}
