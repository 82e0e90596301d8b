import { promises as fsp } from 'node:fs';
import { basename, join } from 'node:path';
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
  const local = svc.blob.localPath?.(d);
  if (local) {
    const dir = join(svc.config.data_dir, 'quarantine');
    await fsp.mkdir(dir, { recursive: true });
    await fsp.rename(local, join(dir, basename(local))).catch(() => {});
  } else {
    await svc.blob.delete(d);
  }
  for (const f of await svc.meta.files.byDigest(d)) {
    if (f.source === 'remote') await svc.meta.files.remove(f.repo, f.path);
  }
}
