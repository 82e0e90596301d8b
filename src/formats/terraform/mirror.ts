import { AppError } from '../../lib/errors.js';
import { upstreamOf } from '../../repos/registry.js';
import { resolveDoc } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import type { RepoDef } from '../../storage/meta/types.js';
import type { DocOrigin } from '../../server/send.js';
import type { ProviderAddr } from './names.js';
import { providerDownload, versionsSource } from './providers.js';
import { cachedH1 } from './zipfacts.js';

/**
 * A remote repo mirrors the providers of its upstream's host only: `HOST/NS/TYPE` names a provider
 * of that registry, and another host's provider of the same name is not the same provider.
 */
function checkHost(repo: RepoDef, hostname: string): void {
  const upstream = upstreamOf(repo);
  if (upstream && upstream.host.toLowerCase() !== hostname.toLowerCase()) throw new AppError('NOT_FOUND', `${repo.name} mirrors ${upstream.host}, not ${hostname}`);
}

/** `HOST/NS/TYPE/index.json` of the provider network mirror protocol. */
export async function mirrorIndex(svc: Services, repo: RepoDef, hostname: string, p: ProviderAddr): Promise<{ origin: DocOrigin; body: unknown }> {
  checkHost(repo, hostname);
  const served = await resolveDoc(svc, repo, versionsSource(svc, p));
  return { origin: served, body: { versions: Object.fromEntries(served.doc.map((e) => [e.version, {}])) } };
}

/**
 * `HOST/NS/TYPE/VERSION.json`: every platform's zip with its hashes: `zh:` (the zip's sha256,
 * from the upload or the upstream's signed SHA256SUMS) and `h1:` (Go's dirhash of the contents)
 * when it can be computed: for uploads always, for a remote once the zip is cached.
 */
export async function mirrorVersion(svc: Services, repo: RepoDef, hostname: string, p: ProviderAddr, version: string, base: string): Promise<{ origin: DocOrigin; body: unknown }> {
  checkHost(repo, hostname);
  const served = await resolveDoc(svc, repo, versionsSource(svc, p));
  const entry = served.doc.find((e) => e.version === version);
  if (!entry) throw new AppError('NOT_FOUND', `${p.namespace}/${p.type} ${version} not found in ${repo.name}`);
  const archives: Record<string, { url: string; hashes: string[] }> = {};
  for (const { os, arch } of entry.platforms) {
    const d = await providerDownload(svc, repo, p, version, os, arch, { signed: false });
    const h1 = d.h1 ?? (await cachedH1(svc, d.servedBy, d.zip, d.shasum));
    archives[`${os}_${arch}`] = { url: `${base}/${d.zip}`, hashes: [...(h1 ? [h1] : []), `zh:${d.shasum}`] };
  }
  return { origin: served, body: { archives } };
}
