import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError, statusOf } from '../lib/errors.js';
import { safeRepoPath } from '../lib/paths.js';
import type { Services } from '../repos/services.js';
import type { RepoDef } from '../storage/meta/types.js';
import type { FormatHandler, RequestCtx } from '../formats/types.js';

/** What a request does to the repos it names. `admin` is the management API's. */
export type Action = 'read' | 'write' | 'delete' | 'admin';

/**
 * What the core knows about a request before any handler runs: the repos it touches, what it
 * does to them and under which format. Auth checks it, metrics count it, audit records it.
 */
export interface Operation {
  format: string;
  action: Action;
  /** The repo the URL names first; undefined for repo-less routes (docker's `/v2/`, `_catalog`). */
  repo?: RepoDef;
  /** Every repo the request touches with its action (the URL's repo first; a mount's source as `read`). */
  touches: { repo: RepoDef; action: Action }[];
  /** The path, digest or package the request acts on, for the audit trail. */
  subject?: string;
  /** Set by an identity hook (auth); undefined = anonymous. */
  identity?: { user: string; tokenId?: string };
}

/** One matched request, handed to a route's handler. */
export interface Call {
  req: FastifyRequest;
  reply: FastifyReply;
  svc: Services;
  ctx: RequestCtx;
  /** `ctx.rest` decoded and checked by safeRepoPath (or raw for `raw` routes); '' for the repo root. */
  path: string;
  /** The route pattern's capture groups (undefined ones as ''). */
  params: string[];
  query: URLSearchParams;
  op: Operation;
}

type Method = 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

/**
 * One route of a format, as data. Matched in order against the request path under `/REPO/`.
 * `GET` also answers `HEAD`. A method the path matches under no route is 405.
 */
export interface Route {
  method: Method | Method[];
  path: RegExp;
  /** Match against the still percent-encoded path (formats whose names carry `%2f`). */
  raw?: boolean;
  action: Action | ((c: Call) => Action);
  /** Other repos the request touches (a cross-repo mount reads its source): added to `op.touches`. */
  touches?(c: Call): Promise<{ repo: RepoDef; action: Action }[]>;
  /** What the audit trail names; default the path. */
  subject?(c: Call): string | undefined;
  handle(c: Call): Promise<unknown>;
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

const actionOfMethod = (m: string): Action => (m === 'GET' || m === 'HEAD' ? 'read' : m === 'DELETE' ? 'delete' : 'write');

/**
 * Finds the route of `format` for this request, builds its Operation, runs the before-hooks,
 * then the handler, then the after-hooks with the outcome. Formats without a route table
 * (`handle`) get an Operation from the method alone.
 */
export async function runOperation(
  format: FormatHandler, req: FastifyRequest, reply: FastifyReply, svc: Services, ctx: RequestCtx,
): Promise<unknown> {
  const query = new URLSearchParams((req.raw.url ?? '').split('?')[1] ?? '');
  const op: Operation = { format: format.name, action: actionOfMethod(req.method), repo: ctx.repo, touches: [] };
  let decoded: string | undefined;
  // Throws INVALID_PATH for traversal and for the empty path: a route for the repo root is `raw`.
  const decodedPath = () => (decoded ??= safeRepoPath(ctx.rest));
  const call: Call = { req, reply, svc, ctx, path: '', params: [], query, op };
  let handle: (c: Call) => Promise<unknown>;
  if (format.routes) {
    let route: Route | undefined;
    let pathMatched = false;
    for (const r of format.routes) {
      const path = r.raw ? ctx.rest : decodedPath();
      const m = r.path.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (!matchesMethod(r, req.method)) continue;
      route = r;
      call.path = path;
      call.params = m.slice(1).map((p) => p ?? '');
      break;
    }
    if (!route) {
      if (pathMatched) throw new AppError('METHOD_NOT_ALLOWED', `${req.method} is not supported here`);
      throw new AppError('NOT_FOUND', `${ctx.rest || '/'} is not part of a ${format.name} repository`);
    }
    op.action = typeof route.action === 'function' ? route.action(call) : route.action;
    op.subject = route.subject ? route.subject(call) : call.path || undefined;
    op.touches = [{ repo: ctx.repo, action: op.action }, ...(route.touches ? await route.touches(call) : [])];
    handle = route.handle;
  } else {
    call.path = ctx.rest;
    op.subject = ctx.rest || undefined;
    op.touches = [{ repo: ctx.repo, action: op.action }];
    handle = (c) => format.handle!(c.req, c.reply, c.ctx, c.svc);
  }
  return runWithHooks(op, call, handle);
}

/** The hook sequence, for routes the dispatcher matched and for core routes (management API). */
export async function runWithHooks(op: Operation, call: Call, handle: (c: Call) => Promise<unknown>): Promise<unknown> {
  const { req, svc } = call;
  req.operation = op;
  const hooks = svc.pipeline;
  let outcome: { status: number; error?: unknown } | undefined;
  try {
    for (const h of hooks.before) await h(op, req);
    const result = await handle(call);
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

/** Whether every visibility hook lets the caller see `repo` in a listing. */
export function visibleTo(svc: Services, op: Operation, repo: RepoDef): boolean {
  return svc.pipeline.visible.every((v) => v(op, repo));
}
