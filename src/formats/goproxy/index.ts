import { AppError } from '../../lib/errors.js';
import { resolveListed } from '../../repos/listed.js';
import { byKind, resolveDoc, resolveFile } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import type { Served } from '../../repos/types.js';
import { firstMember, nullIfNotFound } from '../../repos/virtual.js';
import { sendDocument, sendServed } from '../../server/send.js';
import type { Call } from '../../server/pipeline.js';
import type { RepoDef } from '../../storage/meta/types.js';
import type { FormatHandler } from '../types.js';
import { listSource, paths, renderList, upstreamUrl, type ZipMeta } from './index-doc.js';
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
 * `.info`, `.mod` or `.zip` of a version, for every kind (repos/listed.ts). Local: its rows. Remote:
 * the cache (these are immutable), else the upstream, checked against the checksum database when
 * this repo proxies one. Virtual: from the member whose list names the version; one no list names
 * (a pseudo-version) is asked of the members in order, local ones only when a local member
 * publishes the module. A `.info` for a query that is not a canonical version (a branch) is
 * mutable, with the TTL.
 */
function moduleFile(svc: Services, repo: RepoDef, mod: string, modulePath: string, version: string, ext: Ext): Promise<Served> {
  const canonical = isCanonicalVersion(version);
  if (!canonical && ext !== 'info') throw new AppError('NOT_FOUND', `${version} is not a version of ${modulePath}`);
  const path = paths.file(mod, version, ext);
  return resolveListed(svc, repo, {
    doc: listSource(svc, mod, modulePath), path, what: `${modulePath}@${version}`,
    find: (list) => list.versions.find((v) => v.version === version),
    origin: (_list, v) => v.member,
    async unlisted(r) {
      const verify = canonical && ext !== 'info' ? await sumdbVerifier(svc, r, mod, modulePath, version, ext) : undefined;
      return { mutable: !canonical, contentType: CONTENT_TYPES[ext], locate: (x) => upstreamUrl(svc, x, path), ...(verify ? { verify, whole: true } : {}) };
    },
  });
}

/**
 * `<module>/@latest`: the upstream's answer through a remote repo (mutable, with the TTL: it knows
 * the pseudo-version of a module without tags); the `.info` of the newest listed version in a
 * local or virtual repo, a virtual one falling back to its members' own @latest when none lists a
 * version.
 */
function latest(svc: Services, repo: RepoDef, mod: string, modulePath: string, depth = 0): Promise<Served> {
  const fromList = async (r: RepoDef): Promise<Served> => {
    const list = (await resolveDoc(svc, r, listSource(svc, mod, modulePath), depth).catch(nullIfNotFound))?.doc;
    const newest = list && latestOf(list.versions.map((v) => v.version));
    if (newest) return moduleFile(svc, r, mod, modulePath, newest, 'info');
    return firstMember(svc, r, depth + 1, (m) => latest(svc, m, mod, modulePath, depth + 1));
  };
  return byKind(repo, {
    local: fromList,
    virtual: fromList,
    remote: (r) => resolveFile(svc, r, { path: paths.latest(mod), mutable: true, contentType: CONTENT_TYPES.info, locate: (x) => upstreamUrl(svc, x, paths.latest(mod)) }),
  });
}

export type { ZipMeta };
