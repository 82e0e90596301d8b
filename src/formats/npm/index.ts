import type { FastifyReply, FastifyRequest } from 'fastify';
import semver from 'semver';
import { AppError } from '../../lib/errors.js';
import { collectRequest } from '../../lib/streams.js';
import { readTarget, writeTarget } from '../../repos/local.js';
import { forward } from '../../repos/forward.js';
import { resolveListed, type ListedFile } from '../../repos/listed.js';
import { resolveDoc, type ServedDoc } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import type { Served } from '../../repos/types.js';
import { originHeaders, sendDoc, sendDocument, sendServed } from '../../server/send.js';
import type { RepoDef } from '../../storage/meta/types.js';
import type { FormatHandler, RequestCtx } from '../types.js';
import {
  ABBREVIATED_TYPE, hashesOf, type Dist, packumentSource, renderPackument, renderVersion, versionOfFile, wantsAbbreviated, type PackDoc,
} from './index-doc.js';
import { npmPath, paths } from './names.js';
import { addDistTag, deletePackage, deleteTarball, putPackage, removeDistTag } from './publish.js';

/**
 * npm registry protocol under /REPO/: packuments (full and abbreviated),
 * tarballs, dist-tags, publish/unpublish. Kinds come from repos/: this file
 * only says what a packument and a tarball are.
 */
/** A package name in a decoded path: `@scope/name` or `name` (validated by names.ts before routes match). */
const NAME = '(@[^/]+/[^/]+|[^/@][^/]*)';

export const npm: FormatHandler = {
  name: 'npm',

  errorBody(_code: string, message: string) {
    return { error: message };
  },

  decodePath: npmPath,
  routes: [
    // Registry endpoints under `-/` first: `-` is never a package name.
    { method: 'GET', path: /^-\/ping$/, action: 'read', handle: async ({ reply }) => reply.send({}) },
    {
      method: 'POST', path: /^-\/npm\/v1\/security\/(?:advisories\/bulk|audits\/quick|audits)$/, action: 'read',
      handle: ({ req, reply, ctx, svc }) => sendForwarded(req, reply, ctx, svc),
    },
    { method: 'GET', path: /^-\/v1\/search$/, action: 'read', handle: ({ req, reply, ctx, svc }) => sendForwarded(req, reply, ctx, svc) },
    {
      method: 'GET', path: new RegExp(`^-/package/${NAME}/dist-tags$`), action: 'read',
      async handle({ req, reply, ctx, svc, params: [name] }) {
        const served = await resolveDoc(svc, ctx.repo, packumentSource(svc, name));
        return sendJson(req, reply, served, served.doc.json['dist-tags']);
      },
    },
    {
      method: 'GET', path: new RegExp(`^-/package/${NAME}/dist-tags/([^/]+)$`), action: 'read',
      async handle({ req, reply, ctx, svc, params: [name, tag] }) {
        const served = await resolveDoc(svc, ctx.repo, packumentSource(svc, name));
        const v = served.doc.json['dist-tags'][tag];
        if (!v) throw new AppError('NOT_FOUND', `${tag} is not a dist-tag of ${name}`);
        return sendJson(req, reply, served, v);
      },
    },
    {
      method: ['PUT', 'POST'], path: new RegExp(`^-/package/${NAME}/dist-tags/([^/]+)$`), action: 'write',
      handle: async ({ req, reply, ctx, svc, params: [name, tag] }) => reply.code(201).send(await addDistTag(req, svc, await writeTarget(svc, ctx.repo), name, tag)),
    },
    {
      method: 'DELETE', path: new RegExp(`^-/package/${NAME}/dist-tags/([^/]+)$`), action: 'delete',
      handle: async ({ reply, ctx, svc, params: [name, tag] }) => reply.send(await removeDistTag(svc, await writeTarget(svc, ctx.repo), name, tag)),
    },
    // The package: `NAME` or `NAME/-rev/REV` (the revision a write must match).
    {
      method: 'GET', path: new RegExp(`^${NAME}(?:/-rev/([^/]+))?$`), action: 'read',
      handle: ({ req, reply, ctx, svc, params: [name] }) => sendPackument(req, reply, ctx, svc, name),
    },
    {
      method: 'PUT', path: new RegExp(`^${NAME}(?:/-rev/([^/]+))?$`), action: 'write',
      handle: async ({ req, reply, ctx, svc, params: [name, rev] }) => reply.code(201).send(await putPackage(req, svc, await writeTarget(svc, ctx.repo), name, rev || undefined)),
    },
    {
      method: 'DELETE', path: new RegExp(`^${NAME}(?:/-rev/([^/]+))?$`), action: 'delete',
      handle: async ({ reply, ctx, svc, params: [name, rev] }) => reply.send(await deletePackage(svc, await writeTarget(svc, ctx.repo), name, rev || undefined)),
    },
    {
      method: 'GET', path: new RegExp(`^${NAME}/-/([^/]+)$`), action: 'read',
      async handle({ req, reply, ctx, svc, params: [name, file] }) {
        const served = await tarball(svc, ctx.repo, name, file);
        return sendServed(req, reply, served, svc, { contentType: 'application/octet-stream' });
      },
    },
    {
      method: 'DELETE', path: new RegExp(`^${NAME}/-/([^/]+)(?:/-rev/([^/]+))?$`), action: 'delete',
      handle: async ({ reply, ctx, svc, params: [name, file, rev] }) => reply.send(await deleteTarball(svc, await writeTarget(svc, ctx.repo), name, file, rev || undefined)),
    },
    {
      method: 'GET', path: new RegExp(`^${NAME}/([^/]+)$`), action: 'read',
      handle: ({ req, reply, ctx, svc, params: [name, spec] }) => sendVersion(req, reply, ctx, svc, name, spec),
    },
  ],
};

/** A small JSON answer drawn from a packument (dist-tags, one version), through the one document responder. */
function sendJson(req: FastifyRequest, reply: FastifyReply, served: ServedDoc<PackDoc>, value: unknown) {
  return sendDocument(req, reply, served, JSON.stringify(value), 'application/json');
}

/** Headers of an audit or search request that matter to the upstream's answer. */
const FORWARD_HEADERS = ['accept', 'accept-encoding', 'content-type', 'content-encoding'];

/** npm audit and search, answered by the upstream (through a virtual repo: its first remote member that knows). */
async function sendForwarded(req: FastifyRequest, reply: FastifyReply, ctx: RequestCtx, svc: Services) {
  const headers: Record<string, string> = {};
  for (const h of FORWARD_HEADERS) if (typeof req.headers[h] === 'string') headers[h] = req.headers[h] as string;
  const body = req.method === 'POST' ? await collectRequest(req.raw, svc.config.limits.metadata_body, 'audit request') : undefined;
  const query = req.url.indexOf('?');
  const r = await forward(svc, ctx.repo, { method: req.method as 'GET' | 'POST', path: ctx.rest + (query === -1 ? '' : req.url.slice(query)), body, headers });
  originHeaders(reply.code(r.status), { source: 'remote', servedBy: r.servedBy });
  for (const h of ['content-type', 'content-encoding', 'content-length']) if (r.headers[h]) reply.header(h, r.headers[h]);
  return reply.send(r.body);
}

/**
 * GET /REPO/<name>: the packument, abbreviated when Accept asks for
 * install-v1. `?write=true` (the client is about to change it) reads the
 * repo that takes the write, so `_rev` is the one the write will check.
 */
async function sendPackument(req: FastifyRequest, reply: FastifyReply, ctx: RequestCtx, svc: Services, name: string) {
  const write = /[?&]write=true(&|$)/.test(req.url);
  const abbreviated = !write && wantsAbbreviated(req.headers.accept);
  const repo = write ? await readTarget(svc, ctx.repo) : ctx.repo;
  const served = await resolveDoc(svc, repo, packumentSource(svc, name));
  return sendDoc(req, reply, served, renderPackument(svc, served.doc, name, ctx.repoUrl, abbreviated), abbreviated ? ABBREVIATED_TYPE : 'application/json');
}

/** GET /REPO/<name>/<version|tag>: one version's manifest. */
async function sendVersion(req: FastifyRequest, reply: FastifyReply, ctx: RequestCtx, svc: Services, name: string, spec: string) {
  const served = await resolveDoc(svc, ctx.repo, packumentSource(svc, name));
  const j = served.doc.json;
  const version = j.versions[spec] ? spec : j['dist-tags'][spec] ?? semver.maxSatisfying(Object.keys(j.versions), spec);
  if (!version || !j.versions[version]) throw new AppError('NOT_FOUND', `${name}@${spec} is not in ${ctx.repo.name}`);
  return sendJson(req, reply, served, renderVersion(served.doc, version, ctx.repoUrl));
}

/**
 * A tarball as the package's packument lists it (repos/listed.ts). Remote: fetched from the URL
 * the upstream packument gives and verified against that version's dist.integrity/shasum before
 * it is kept. Virtual: from the member whose version the merged packument lists.
 */
export function tarballFile(svc: Services, name: string, file: string): ListedFile<PackDoc, { version: string; dist?: Dist }> {
  return {
    doc: packumentSource(svc, name),
    path: paths.tarball(name, file),
    what: `${file} of ${name}`,
    cachedFirst: true,
    find(doc) {
      const version = versionOfFile(doc, file);
      return version === undefined ? undefined : { version, dist: doc.json.versions[version].dist };
    },
    origin: (doc, { version }) => doc.origin?.get(version),
    upstream(repo, { version, dist }) {
      const hashes = hashesOf(dist);
      if (!hashes.sha512 && !hashes.sha1) throw new AppError('UPSTREAM_FAILED', `${name}@${version} has no integrity to verify its tarball against`);
      return { expect: { hashes }, contentType: 'application/octet-stream', locate: (r) => upstreamTarballUrl(svc, r, name, file, dist?.tarball) };
    },
  };
}

/** A tarball from any kind of repo. */
export function tarball(svc: Services, repo: RepoDef, name: string, file: string): Promise<Served> {
  return resolveListed(svc, repo, tarballFile(svc, name, file));
}

/** Where the upstream keeps a tarball: its packument's dist.tarball (http/https only), else the registry layout. */
function upstreamTarballUrl(svc: Services, repo: RepoDef, name: string, file: string, tarballUrl: string | undefined): string {
  try {
    const u = new URL(tarballUrl ?? '');
    if (u.protocol === 'http:' || u.protocol === 'https:') return u.toString();
  } catch {
    // relative or malformed: fall back below
  }
  return `${svc.repos.upstreamSettings(repo).upstream.replace(/\/*$/, '/')}${name}/-/${encodeURIComponent(file)}`;
}
