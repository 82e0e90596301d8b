import semver from 'semver';
import { parseJson } from '../../lib/decode.js';
import { AppError } from '../../lib/errors.js';

/** Provider and module coordinates as terraform writes them in addresses and registry URLs. */
const NAMESPACE_RE = /^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9])?$/;
const TYPE_RE = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;
const PLATFORM_RE = /^[a-z0-9]{1,32}$/;

export const JSON_TYPE = 'application/json';
export const ZIP_TYPE = 'application/zip';
export const TGZ_TYPE = 'application/gzip';

export interface ProviderAddr {
  namespace: string;
  type: string;
}

export interface ModuleAddr {
  namespace: string;
  name: string;
  system: string;
}

/** Checks a provider's namespace and type; `code` NOT_FOUND for reads (nothing by that name), BAD_REQUEST for uploads. */
export function providerAddr(namespace: string, type: string, code: 'NOT_FOUND' | 'BAD_REQUEST' = 'NOT_FOUND'): ProviderAddr {
  if (!NAMESPACE_RE.test(namespace)) throw new AppError(code, `invalid provider namespace ${JSON.stringify(namespace)}`);
  if (!TYPE_RE.test(type)) throw new AppError(code, `invalid provider type ${JSON.stringify(type)} (lower case letters, digits and dashes)`);
  return { namespace, type };
}

export function moduleAddr(namespace: string, name: string, system: string, code: 'NOT_FOUND' | 'BAD_REQUEST' = 'NOT_FOUND'): ModuleAddr {
  if (!NAMESPACE_RE.test(namespace)) throw new AppError(code, `invalid module namespace ${JSON.stringify(namespace)}`);
  if (!NAMESPACE_RE.test(name)) throw new AppError(code, `invalid module name ${JSON.stringify(name)}`);
  if (!TYPE_RE.test(system)) throw new AppError(code, `invalid module target system ${JSON.stringify(system)}`);
  return { namespace, name, system };
}

/** A version as terraform's registries list them: SemVer 2 without a `v`. */
export function checkVersion(v: string, code: 'NOT_FOUND' | 'BAD_REQUEST' = 'NOT_FOUND'): string {
  if (!/^[0-9]/.test(v) || semver.valid(v) !== v) throw new AppError(code, `version ${JSON.stringify(v)} is not SemVer 2 (e.g. 1.2.3)`);
  return v;
}

export function checkPlatform(os: string, arch: string, code: 'NOT_FOUND' | 'BAD_REQUEST' = 'NOT_FOUND'): void {
  if (!PLATFORM_RE.test(os) || !PLATFORM_RE.test(arch)) throw new AppError(code, `invalid platform ${JSON.stringify(`${os}_${arch}`)}`);
}

export const providerDir = (p: ProviderAddr) => `v1/providers/${p.namespace}/${p.type}`;
export const moduleDir = (m: ModuleAddr) => `v1/modules/${m.namespace}/${m.name}/${m.system}`;

/** Where a provider package is stored and served: the same path it is uploaded to. */
export const zipPath = (p: ProviderAddr, version: string, os: string, arch: string) => `${providerDir(p)}/${version}/${os}_${arch}.zip`;

/** The file name terraform expects in SHA256SUMS and the download JSON. */
export const zipFileName = (p: ProviderAddr, version: string, os: string, arch: string) => `terraform-provider-${p.type}_${version}_${os}_${arch}.zip`;

export const byVersionDesc = (a: { version: string }, b: { version: string }) => semver.rcompare(a.version, b.version);

/** A JSON document from an upstream, or UPSTREAM_FAILED naming what it should have been. */
export const upstreamJson = (body: Buffer, what: string): unknown => parseJson(body, 'UPSTREAM_FAILED', `${what} is not JSON`);
