import { AppError, statusOf } from '../../lib/errors.js';
import { readCapped, resolveFile } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import type { FileRef, Served } from '../../repos/types.js';
import type { RepoDef } from '../../storage/meta/types.js';
import { upstreamUrl } from './index-doc.js';
import { h1OfMod, h1OfModuleZip } from './zipfile.js';

/**
 * The checksum database (`GOSUMDB`) through the proxy, as proxy.golang.org serves it: go asks
 * `<proxy>/sumdb/<name>/supported` and, when that answers 200, sends its lookups and tile reads
 * here. A remote repo forwards them to its upstream's `sumdb/<name>/` and caches them: tiles and
 * lookups are immutable, `latest` and `supported` follow the TTL. go verifies the signed tree
 * notes and tile hashes itself; the proxy only stores and serves them.
 */

/** Where a remote repo keeps the `supported` answer of each checksum database it proxies: listing this prefix names them. */
const SUPPORTED_PREFIX = 'sumdb-supported/';
const LOOKUP_CAP = 64 * 1024;
const TILE_RE = /^tile\/\d+\/(\d+|data)\/(x\d{3}\/)*\d{3}(\.p\/\d+)?$/;
const LOOKUP_RE = /^lookup\/[^@]+@[^@]+$/;

function sumdbRef(svc: Services, name: string, rest: string): FileRef {
  const upstreamPath = `sumdb/${name}/${rest}`;
  const locate = (r: RepoDef) => upstreamUrl(svc, r, upstreamPath);
  const base = { contentType: 'text/plain; charset=utf-8', locate, rejectHtml: true };
  if (rest === 'supported') return { ...base, path: `${SUPPORTED_PREFIX}${name}`, mutable: true };
  if (rest === 'latest') return { ...base, path: upstreamPath, mutable: true };
  if (TILE_RE.test(rest)) return { ...base, path: upstreamPath, contentType: 'application/octet-stream' };
  if (LOOKUP_RE.test(rest)) return { ...base, path: upstreamPath };
  throw new AppError('NOT_FOUND', `${rest} is not part of a checksum database`);
}

/** A checksum database file through any kind: a local repo has none (404, so go asks the next proxy or the database itself). */
export function sumdbFile(svc: Services, repo: RepoDef, name: string, rest: string): Promise<Served> {
  return resolveFile(svc, repo, sumdbRef(svc, name, rest));
}

/** The checksum databases this remote repo proxies: those go asked `supported` of through it. */
async function proxiedSumdbs(svc: Services, repo: RepoDef): Promise<string[]> {
  const names: string[] = [];
  for await (const f of svc.meta.files.list(repo.name, SUPPORTED_PREFIX)) names.push(f.path.slice(SUPPORTED_PREFIX.length));
  return names;
}

/**
 * The `h1:` hashes a checksum database records for `module version` (the zip's) and
 * `module version/go.mod`; null when the database does not know the version (a private module).
 */
async function recordedHashes(svc: Services, repo: RepoDef, name: string, mod: string, modulePath: string, version: string) {
  let body: Buffer;
  try {
    body = await readCapped(svc, await sumdbFile(svc, repo, name, `lookup/${mod}@${version}`), LOOKUP_CAP);
  } catch (err) {
    if (statusOf(err) === 404) return null;
    throw new AppError('UPSTREAM_FAILED', `checksum database ${name} could not be asked about ${modulePath}@${version}`);
  }
  const out: { zip?: string; mod?: string } = {};
  for (const line of body.toString('utf8').split('\n')) {
    const [p, v, h] = line.split(' ');
    if (p !== modulePath || !h?.startsWith('h1:')) continue;
    if (v === version) out.zip = h;
    else if (v === `${version}/go.mod`) out.mod = h;
  }
  return out;
}

/**
 * When this remote repo proxies a checksum database, a `.mod` or `.zip` fetched from the upstream
 * must hash (h1:, as go computes it) to what the database records, or it is refused (502) and not
 * cached. Undefined when there is nothing to check against.
 */
export async function sumdbVerifier(svc: Services, repo: RepoDef, mod: string, modulePath: string, version: string, ext: 'mod' | 'zip'): Promise<FileRef['verify']> {
  const names = await proxiedSumdbs(svc, repo);
  if (names.length === 0) return undefined;
  return async (r, stored) => {
    for (const name of names) {
      const recorded = await recordedHashes(svc, r, name, mod, modulePath, version);
      const want = recorded?.[ext];
      if (!want) continue;
      const got = ext === 'mod' ? await h1OfMod(svc, stored.digest) : await h1OfModuleZip(svc, stored.digest);
      if (got !== want) {
        throw new AppError('UPSTREAM_FAILED', `${modulePath}@${version}.${ext} from the upstream hashes to ${got}, but checksum database ${name} records ${want}: refused`);
      }
    }
  };
}
