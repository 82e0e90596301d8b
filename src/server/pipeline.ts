import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError, statusOf } from '../lib/errors.js';
import { safeRepoPath } from '../lib/paths.js';
import type { Services } from '../repos/services.js';
import { actingAs } from '../repos/writes.js';
import type { RepoDef } from '../storage/meta/types.js';
import type { FormatHandler, RequestCtx } from '../formats/types.js';

/** What a request does to the repos it names. `admin` is the management API's. */
export type Action = 'read' | 'write' | 'delete' | 'admin';

/**
 * What the core knows about a request before any handler runs: the repos it touches, what it
 * does to them and under which format. Auth checks it, metrics count it, audit records it.
 */
export interface Operation {
  /** The format's name; `api` for the management API. */
  format: string;
  action: Action;
  /** The repo the URL names first; undefined for repo-less routes (docker's `/v2/`, `_catalog`, `repo list`). */
  repo?: RepoDef;
  /** Every repo the request touches with its action (the URL's repo first; a mount's source as `read`). */
  touches: { repo: RepoDef; action: Action }[];
  /** The path, digest or package the request acts on, for the audit trail. */
  subject?: string;
  /** Set by an identity hook (auth); undefined = anonymous. */
  identity?: { user: string; tokenId?: string };
  /** The route is where clients learn whether to log in (Route.login). */
  login?: boolean;
}

/** One matched request of a repo-less route (docker's `/v2/` base, `_catalog`, `/v2/token`). */
export interface RepolessCall {
  req: FastifyRequest;
  reply: FastifyReply;
  svc: Services;
  /** The path the route matched: decoded by the format (`decodePath`, default safeRepoPath), or raw for `raw` routes. */
  path: string;
  /** The route pattern's capture groups (undefined ones as ''). */
  params: string[];
  query: URLSearchParams;
  op: Operation;
}

/** One matched request, handed to a route's handler, with the repo it names. */
export interface Call extends RepolessCall {
  /** The request's repo and base URL. */
  ctx: RequestCtx;
}

export type Method = 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

/**
 * One route of a format, as data. Matched in order against the path under `/REPO/` (or under a
 * format entry's prefix). `GET` also answers `HEAD`. A path that some route matches under other
 * methods only is 405; a path no route matches is 404.
 */
interface RouteShape<C> {
  method: Method | Method[];
  path: RegExp;
  /** Match against the still percent-encoded path (formats whose names carry `%2f`). */
  raw?: boolean;
  action: Action | ((c: C) => Action);
  /** Other repos the request touches (a cross-repo mount reads its source): added to `op.touches`. */
  touches?(c: C): Promise<{ repo: RepoDef; action: Action }[]>;
  /** What the audit trail names; default the matched path. */
  subject?(c: C): string | undefined;
  /**
   * Clients learn here whether to log in (docker's `/v2/` ping): an identity hook may challenge a
   * caller without credentials although the route itself needs no permission.
   */
  login?: true;
  handle(c: C): Promise<unknown>;
}

/** A route naming a repo (the URL's, or the one its entry locates), or a repo-less one (`repo: false`: the Operation has none). */
export type Route = (RouteShape<Call> & { repo?: true }) | (RouteShape<RepolessCall> & { repo: false });

/** A format's entry outside `/REPO/`, in its own URL layout (docker's `/v2/`): the same dispatcher serves it. */
export interface Entry {
  /** `/v2`: `/v2`, `/v2/` and `/v2/…` come here; routes match the path after `/v2/` (decoded by the format). */
  prefix: string;
  routes: Route[];
  /** Headers on every answer under the prefix, errors included (docker's API version). */
  headers?: Record<string, string>;
  /** The repo a matched route names in this layout (docker: first name segment, docker.default_repo). */
  locate(c: RepolessCall): Promise<RepoDef>;
}

/** Core hooks around every operation: identity and permission before, audit after. */
export interface PipelineHooks {
  /** Runs once (repos, action, format) are known, before the handler; throw to refuse. */
  before: ((op: Operation, req: FastifyRequest) => Promise<void> | void)[];
  /** Sees every operation with its outcome (status, or the error that ended it). */
  after: ((op: Operation, req: FastifyRequest, outcome: { status: number; error?: unknown }) => void)[];
  /** Narrows multi-repo listings (`_catalog`, `repo list`) to what the caller may read. */
  visible: ((op: Operation, repo: RepoDef) => boolean)[];
}

export function newPipelineHooks(): PipelineHooks {
  return { before: [], after: [], visible: [] };
}

declare module 'fastify' {
  interface FastifyRequest {
    operation?: Operation;
  }
}

const matchesMethod = (r: Route, m: string) => {
  const ms = Array.isArray(r.method) ? r.method : [r.method];
  return ms.includes(m as Method) || (m === 'HEAD' && ms.includes('GET'));
};

export const actionOfMethod = (m: string): Action => (m === 'GET' || m === 'HEAD' ? 'read' : m === 'DELETE' ? 'delete' : 'write');

export interface Match {
  route: Route;
  path: string;
  params: string[];
}

/**
 * The route of `routes` for (method, rest), rest being the raw path after `/REPO/` or the entry
 * prefix. Non-raw routes match the format's decoded path; decoding runs once, on the first
 * non-raw route tried, and its error (INVALID_PATH for traversal) is the answer.
 */
export function matchRoute(format: FormatHandler, routes: Route[], method: string, rest: string): Match {
  let decoded: string | undefined;
  const decode = format.decodePath ?? safeRepoPath;
  let pathMatched = false;
  for (const r of routes) {
    const path = r.raw ? rest : (decoded ??= decode(rest));
    const m = r.path.exec(path);
    if (!m) continue;
    pathMatched = true;
    if (!matchesMethod(r, method)) continue;
    return { route: r, path, params: m.slice(1).map((p) => p ?? '') };
  }
  if (pathMatched) throw new AppError('METHOD_NOT_ALLOWED', `${method} is not supported here`);
  throw new AppError('NOT_FOUND', `${rest || '/'} is not part of a ${format.name} repository`);
}

/** `/REPO/…`: the repo is known from the URL; finds the route and runs it through the hooks. */
export function runOperation(format: FormatHandler, req: FastifyRequest, reply: FastifyReply, svc: Services, ctx: RequestCtx): Promise<unknown> {
  return dispatch(format, format.routes, req, reply, svc, ctx.rest, async () => ctx);
}

/** A format entry (`/v2/…`): the route first, then the repo it names (`entry.locate`) unless it is repo-less. */
export function runEntry(
  format: FormatHandler, entry: Entry, req: FastifyRequest, reply: FastifyReply, svc: Services, rest: string, ctxOf: (repo: RepoDef) => RequestCtx,
): Promise<unknown> {
  return dispatch(format, entry.routes, req, reply, svc, rest, async (c) => ctxOf(await entry.locate(c)));
}

async function dispatch(
  format: FormatHandler, routes: Route[], req: FastifyRequest, reply: FastifyReply, svc: Services, rest: string, locate: (c: RepolessCall) => Promise<RequestCtx>,
): Promise<unknown> {
  const { route, path, params } = matchRoute(format, routes, req.method, rest);
  const op: Operation = { format: format.name, action: actionOfMethod(req.method), touches: [], ...(route.login ? { login: true } : {}) };
  const call: RepolessCall = { req, reply, svc, path, params, op, query: new URLSearchParams((req.raw.url ?? '').split('?')[1] ?? '') };
  if (route.repo === false) return runRoute(route, call);
  const ctx = await locate(call);
  op.repo = ctx.repo;
  req.artifact = { repo: op.repo.name, format: format.name };
  return runRoute(route, { ...call, ctx });
}

async function runRoute<C extends RepolessCall>(route: RouteShape<C>, call: C): Promise<unknown> {
  const { op } = call;
  op.action = typeof route.action === 'function' ? route.action(call) : route.action;
  op.subject = route.subject ? route.subject(call) : call.path || undefined;
  op.touches = [...(op.repo ? [{ repo: op.repo, action: op.action }] : []), ...(route.touches ? await route.touches(call) : [])];
  return runWithHooks(op, call, route.handle);
}

/**
 * The hook sequence, for routes the dispatcher matched and for core routes (management API):
 * before-hooks (throw to refuse), the handler, then after-hooks with the outcome.
 */
export async function runWithHooks<C extends Pick<RepolessCall, 'req' | 'reply' | 'svc'>>(
  op: Operation, call: C, handle: (c: C) => Promise<unknown>,
): Promise<unknown> {
  const { req, svc } = call;
  req.operation = op;
  const hooks = svc.pipeline;
  let outcome: { status: number; error?: unknown } | undefined;
  try {
    for (const h of hooks.before) await h(op, req);
    const result = await actingAs(op.identity, () => handle(call));
    outcome = { status: call.reply.statusCode };
    return result;
  } catch (error) {
    outcome = { status: statusOf(error), error };
    throw error;
  } finally {
    for (const h of hooks.after) {
      try {
        h(op, req, outcome!);
      } catch (err) {
        req.log.error({ err }, 'after-hook failed');
      }
    }
  }
}

/** Every repo the caller of `op` may see: what a listing across repos (`_catalog`, `repo list`) starts from. */
export async function visibleRepos(svc: Services, op: Operation): Promise<RepoDef[]> {
  return (await svc.repos.list()).filter((r) => visibleTo(svc, op, r));
}

/** Whether every visibility hook lets the caller see `repo` in a listing. */
export function visibleTo(svc: Services, op: Operation, repo: RepoDef): boolean {
  return svc.pipeline.visible.every((v) => v(op, repo));
}
