import type { FastifyReply, FastifyRequest } from 'fastify';
import semver from 'semver';
import { AppError } from '../../lib/errors.js';
import { collectRequest } from '../../lib/streams.js';
import { writeTarget } from '../../repos/local.js';
import { forward } from '../../repos/forward.js';
import { resolveDoc, resolveFile, type ServedDoc } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import type { Served } from '../../repos/types.js';
import { MAX_DEPTH } from '../../repos/virtual.js';
import { docHeaders, sendDoc, sendServed } from '../../server/send.js';
import type { RepoDef } from '../../storage/meta/types.js';
import type { FormatHandler, RequestCtx } from '../types.js';
import {
  ABBREVIATED_TYPE, hashesOf, packumentSource, renderPackument, renderVersion, versionOfFile, wantsAbbreviated, type PackDoc,
} from './index-doc.js';
import { parseRoute, paths } from './names.js';
import { addDistTag, deletePackage, deleteTarball, putPackage, removeDistTag } from './publish.js';

/**
 * npm registry protocol under /REPO/: packuments (full and abbreviated),
 * tarballs, dist-tags, publish/unpublish. Kinds come from repos/: this file
 * only says what a packument and a tarball are.
 */
export const npm: FormatHandler = {
  name: 'npm',

  errorBody(_code: string, message: string) {
    return { error: message };
  },

  async handle(req: FastifyRequest, reply: FastifyReply, ctx: RequestCtx, svc: Services) {
    const route = parseRoute(ctx.rest);
    if (!route) throw new AppError('NOT_FOUND', 'not found');
    const m = req.method;
    const read = m === 'GET' || m === 'HEAD';
    switch (route.kind) {
      case 'forward':
        if (m !== route.method) break;
        return sendForwarded(req, reply, ctx, svc);
      case 'ping':
        if (!read) break;
        return reply.send({});
      case 'package':
        if (read) return sendPackument(req, reply, ctx, svc, route.name);
        if (m === 'PUT') return reply.code(201).send(await putPackage(req, svc, await writeTarget(svc, ctx.repo), route.name, route.rev));
        if (m === 'DELETE') return reply.send(await deletePackage(svc, await writeTarget(svc, ctx.repo), route.name, route.rev, req.operation?.identity));
        break;
      case 'version':
        if (read) return sendVersion(reply, ctx, svc, route.name, route.spec);
        break;
      case 'tarball':
        if (read && route.rev === undefined) {
          const served = await tarball(svc, ctx.repo, route.name, route.file);
          return sendServed(req, reply, served, svc, { contentType: 'application/octet-stream' });
        }
        if (m === 'DELETE') return reply.send(await deleteTarball(svc, await writeTarget(svc, ctx.repo), route.name, route.file, route.rev, req.operation?.identity));
        break;
      case 'dist-tags':
        if (read && route.tag === undefined) {
          const served = await resolveDoc(svc, ctx.repo, packumentSource(svc, route.name));
          return withSourceHeaders(reply, served).send(served.doc.json['dist-tags']);
        }
        if (read && route.tag !== undefined) {
          const served = await resolveDoc(svc, ctx.repo, packumentSource(svc, route.name));
          const v = served.doc.json['dist-tags'][route.tag];
          if (!v) throw new AppError('NOT_FOUND', `${route.tag} is not a dist-tag of ${route.name}`);
          return withSourceHeaders(reply, served).send(JSON.stringify(v));
        }
        if ((m === 'PUT' || m === 'POST') && route.tag !== undefined) {
          return reply.code(201).send(await addDistTag(req, svc, await writeTarget(svc, ctx.repo), route.name, route.tag));
        }
        if (m === 'DELETE' && route.tag !== undefined) {
          return reply.send(await removeDistTag(svc, await writeTarget(svc, ctx.repo), route.name, route.tag));
        }
        break;
    }
    throw new AppError('METHOD_NOT_ALLOWED', `${m} is not supported here`);
  },
};

function withSourceHeaders(reply: FastifyReply, served: ServedDoc<PackDoc>): FastifyReply {
  return docHeaders(reply, served).header('content-type', 'application/json');
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
  reply.code(r.status).header('x-artifact-source', 'remote').header('x-artifact-repo', r.servedBy);
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
  let repo = ctx.repo;
  if (write && repo.kind === 'virtual' && typeof repo.options.default_local === 'string') repo = await writeTarget(svc, repo);
  const served = await resolveDoc(svc, repo, packumentSource(svc, name));
  return sendDoc(req, reply, served, renderPackument(served.doc, name, ctx.repoUrl, abbreviated), abbreviated ? ABBREVIATED_TYPE : 'application/json');
}

/** GET /REPO/<name>/<version|tag>: one version's manifest. */
async function sendVersion(reply: FastifyReply, ctx: RequestCtx, svc: Services, name: string, spec: string) {
  const served = await resolveDoc(svc, ctx.repo, packumentSource(svc, name));
  const j = served.doc.json;
  const version = j.versions[spec] ? spec : j['dist-tags'][spec] ?? semver.maxSatisfying(Object.keys(j.versions), spec);
  if (!version || !j.versions[version]) throw new AppError('NOT_FOUND', `${name}@${spec} is not in ${ctx.repo.name}`);
  return withSourceHeaders(reply, served).send(renderVersion(served.doc, version, ctx.repoUrl));
}

/**
 * A tarball from any kind. Local: its row. Remote: the cache, else fetched
 * from the URL the upstream packument gives and verified against that
 * version's dist.integrity/shasum before it is kept. Virtual: from the member
 * whose version the merged packument lists (so what the merged document
 * shows is what downloads, and a shadowed remote never serves it).
 */
export async function tarball(svc: Services, repo: RepoDef, name: string, file: string, depth = 0): Promise<Served> {
  const path = paths.tarball(name, file);
  switch (repo.kind) {
    case 'local':
      return resolveFile(svc, repo, { path });
    case 'remote': {
      if (await svc.meta.files.get(repo.name, path)) return resolveFile(svc, repo, { path });
      const { doc, version } = await findTarball(svc, repo, name, file, depth);
      const dist = doc.json.versions[version].dist!;
      const hashes = hashesOf(dist);
      if (!hashes.sha512 && !hashes.sha1) throw new AppError('UPSTREAM_FAILED', `${name}@${version} has no integrity to verify its tarball against`);
      return resolveFile(svc, repo, {
        path, expect: { hashes }, contentType: 'application/octet-stream', locate: (r) => upstreamTarballUrl(svc, r, name, file, dist.tarball),
      });
    }
    case 'virtual': {
      if (depth > MAX_DEPTH) throw new AppError('BAD_REQUEST', `virtual repositories nest deeper than ${MAX_DEPTH}`);
      const { doc, version } = await findTarball(svc, repo, name, file, depth);
      const member = doc.origin?.get(version);
      const def = member ? await svc.repos.get(member) : null;
      if (!def) throw new AppError('NOT_FOUND', `${file} is not a tarball of ${name} in ${repo.name}`);
      return tarball(svc, def, name, file, depth + 1);
    }
  }
}

/** The version whose dist.tarball is `file`, from the package's packument. */
async function findTarball(svc: Services, repo: RepoDef, name: string, file: string, depth: number): Promise<{ doc: PackDoc; version: string }> {
  const { doc } = await resolveDoc(svc, repo, packumentSource(svc, name), depth);
  const version = versionOfFile(doc, file);
  if (version) return { doc, version };
  throw new AppError('NOT_FOUND', `${file} is not a tarball of ${name} in ${repo.name}`);
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
