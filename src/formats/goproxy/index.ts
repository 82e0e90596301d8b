import { AppError } from '../../lib/errors.js';
import { resolveDoc, resolveFile } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import type { Served } from '../../repos/types.js';
import { firstMember, isNotFound, MAX_DEPTH } from '../../repos/virtual.js';
import { sendDocument, sendServed } from '../../server/send.js';
import type { Call } from '../../server/pipeline.js';
import type { RepoDef } from '../../storage/meta/types.js';
import type { FormatHandler } from '../types.js';
import { listSource, paths, renderList, upstreamUrl, type VersionList, type ZipMeta } from './index-doc.js';
import { isCanonicalVersion, latestOf, parseModulePath } from './module.js';
import { sumdbFile, sumdbVerifier } from './sumdb.js';
import { deleteModule, putModuleZip } from './upload.js';

type Ext = 'info' | 'mod' | 'zip';

const CONTENT_TYPES: Record<Ext, string> = { info: 'application/json', mod: 'text/plain; charset=utf-8', zip: 'application/zip' };

/**
 * The GOPROXY protocol under /REPO/ (go's `GOPROXY=http://HOST/REPO`): `<module>/@v/list`,
 * `<module>/@v/<version>.info|.mod|.zip`, `<module>/@latest`, and the checksum database passed
 * through under `sumdb/<name>/`. Module paths arrive case-encoded (`!x`) and are stored so.
 * Unknown modules and versions answer 404, so `GOPROXY=A,B` moves on to B.
 */
export const goproxy: FormatHandler = {
  name: 'goproxy',
  routes: [
    {
      method: 'GET', path: /^sumdb\/([A-Za-z0-9][A-Za-z0-9.-]*)\/(supported|latest|lookup\/.+|tile\/.+)$/, action: 'read',
      async handle({ req, reply, svc, ctx, params: [name, rest] }) {
        return sendServed(req, reply, await sumdbFile(svc, ctx.repo, name, rest), svc);
      },
    },
    {
      method: 'GET', path: /^(.+)\/@v\/list$/, action: 'read',
      async handle({ req, reply, svc, ctx, params: [mod] }) {
        const m = parseModulePath(mod);
        const served = await resolveDoc(svc, ctx.repo, listSource(svc, m.escaped, m.path));
        return sendDocument(req, reply, served, renderList(served.doc), 'text/plain; charset=utf-8');
      },
    },
    {
      method: 'GET', path: /^(.+)\/@latest$/, action: 'read',
      async handle({ req, reply, svc, ctx, params: [mod] }) {
        const m = parseModulePath(mod);
        return sendServed(req, reply, await latest(svc, ctx.repo, m.escaped, m.path), svc, { contentType: CONTENT_TYPES.info });
      },
    },
    {
      method: 'GET', path: /^(.+)\/@v\/([^/]+)\.(info|mod|zip)$/, action: 'read',
      async handle(c) {
        const [mod, version, ext] = c.params as [string, string, Ext];
        const m = parseModulePath(mod);
        const served = await moduleFile(c.svc, c.ctx.repo, m.escaped, m.path, version, ext);
        return sendServed(c.req, c.reply, served, c.svc, { contentType: CONTENT_TYPES[ext] });
      },
    },
    {
      method: 'PUT', path: /^(.+)\/@v\/([^/]+)\.zip$/, action: 'write',
      async handle(c: Call) {
        const [mod, version] = c.params;
        return c.reply.code(201).send(await putModuleZip(c, mod, version));
      },
    },
    {
      method: 'DELETE', path: /^(.+)\/@v\/([^/]+)\.zip$/, action: 'delete',
      async handle(c: Call) {
        const [mod, version] = c.params;
        return c.reply.send(await deleteModule(c, mod, version));
      },
    },
  ],
};

/**
 * `.info`, `.mod` or `.zip` of a version, for every kind. Local: its rows. Remote: the cache (these
 * are immutable), else the upstream, checked against the checksum database when this repo proxies
 * one. Virtual: from the member whose list names the version; one a local member does not list is
 * asked of the members in order, unless a local member publishes the module (then only local ones).
 * A `.info` for a query that is not a canonical version (a branch) is mutable, with the TTL.
 */
async function moduleFile(svc: Services, repo: RepoDef, mod: string, modulePath: string, version: string, ext: Ext, depth = 0): Promise<Served> {
  const canonical = isCanonicalVersion(version);
  if (!canonical && (ext !== 'info' || repo.kind === 'local')) throw new AppError('NOT_FOUND', `${version} is not a version of ${modulePath}`);
  const path = paths.file(mod, version, ext);
  if (repo.kind !== 'virtual') {
    const verify = canonical && ext !== 'info' && repo.kind === 'remote' ? await sumdbVerifier(svc, repo, mod, modulePath, version, ext) : undefined;
    return resolveFile(svc, repo, {
      path, mutable: !canonical, contentType: CONTENT_TYPES[ext], rejectHtml: true,
      locate: (r) => upstreamUrl(svc, r, path), ...(verify ? { verify, whole: true } : {}),
    });
  }
  if (depth > MAX_DEPTH) throw new AppError('BAD_REQUEST', `virtual repositories nest deeper than ${MAX_DEPTH}`);
  const list = await mergedList(svc, repo, mod, modulePath, depth);
  const listed = list?.versions.find((v) => v.version === version);
  const member = listed?.member ? await svc.repos.get(listed.member) : null;
  if (member) return moduleFile(svc, member, mod, modulePath, version, ext, depth + 1);
  return firstMember(svc, repo, depth + 1, async (m) => {
    if (shadowedFor(repo, modulePath, list) && m.kind === 'remote') throw new AppError('NOT_FOUND', `${modulePath} is published locally`);
    return moduleFile(svc, m, mod, modulePath, version, ext, depth + 1);
  });
}

/** A virtual repo's merged list of a module, null when no member lists it. */
async function mergedList(svc: Services, repo: RepoDef, mod: string, modulePath: string, depth: number): Promise<VersionList | null> {
  try {
    return (await resolveDoc(svc, repo, listSource(svc, mod, modulePath), depth)).doc;
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/** A module a local member publishes is served by local members only, unless `allow_shadowed` names it. */
function shadowedFor(repo: RepoDef, modulePath: string, list: VersionList | null): boolean {
  const allowed = (repo.options.allow_shadowed as string[] | undefined) ?? [];
  return !allowed.includes(modulePath) && !!list?.versions.some((v) => v.local);
}

/**
 * `<module>/@latest`: the upstream's answer through a remote repo (mutable, with the TTL); the
 * `.info` of the newest listed version in a local repo, or through a virtual repo (falling back
 * to the members' own @latest when none lists a version).
 */
async function latest(svc: Services, repo: RepoDef, mod: string, modulePath: string, depth = 0): Promise<Served> {
  if (repo.kind === 'remote') {
    const path = paths.latest(mod);
    return resolveFile(svc, repo, { path, mutable: true, contentType: CONTENT_TYPES.info, locate: (r) => upstreamUrl(svc, r, path) });
  }
  const list = repo.kind === 'local'
    ? (await resolveDoc(svc, repo, listSource(svc, mod, modulePath))).doc
    : await mergedList(svc, repo, mod, modulePath, depth);
  const newest = list && latestOf(list.versions.map((v) => v.version));
  if (newest) return moduleFile(svc, repo, mod, modulePath, newest, 'info', depth);
  return firstMember(svc, repo, depth + 1, (m) => latest(svc, m, mod, modulePath, depth + 1));
}

export type { ZipMeta };
