import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { decodePath } from '../lib/decode.js';
import { AppError } from '../lib/errors.js';
import { FORMAT_HANDLERS, formatHandler } from '../formats/index.js';
import type { ChallengeDetail, FormatHandler, RequestCtx } from '../formats/types.js';
import { RESERVED_NAMES } from '../repos/registry.js';
import type { Services } from '../repos/services.js';
import type { RepoDef } from '../storage/meta/types.js';
import { BASIC_CHALLENGE, defaultErrorBody, type ErrorShape } from './errors.js';
import { actionOfMethod, runEntry, runOperation, type Entry } from './pipeline.js';

declare module 'fastify' {
  interface FastifyRequest {
    artifact?: { repo?: string; format?: string };
  }
}

export function baseUrlOf(req: FastifyRequest, publicUrl: string): string {
  if (publicUrl) return publicUrl.replace(/\/+$/, '');
  return `${req.protocol}://${req.headers.host ?? 'localhost'}`;
}

/** The formats with an entry outside /REPO/, by prefix. */
const ENTRIES = Object.values(FORMAT_HANDLERS).filter((f) => f.entry).map((f) => ({ format: f, entry: f.entry! }));

/** The format whose entry prefix the URL is under (`/v2`, `/v2/`, `/v2/…`, with or without a query). */
export function entryOf(url: string): { format: FormatHandler; entry: Entry } | undefined {
  return ENTRIES.find(({ entry }) => url === entry.prefix || url.startsWith(`${entry.prefix}/`) || url.startsWith(`${entry.prefix}?`));
}

/** The format a request speaks: the one the dispatcher found, else the entry its URL is under (before dispatch). */
function formatOf(req: FastifyRequest): FormatHandler | undefined {
  if (req.artifact?.format) return formatHandler(req.artifact.format);
  return entryOf((req.raw.url ?? '/').split('?')[0])?.format;
}

/** The `WWW-Authenticate` value of a 401 in the protocol the request speaks; default Basic. */
export function challengeOf(req: FastifyRequest, svc: Services, o?: ChallengeDetail): string {
  const format = formatOf(req);
  if (!format?.challenge) return BASIC_CHALLENGE;
  const op = req.operation ?? { format: format.name, action: actionOfMethod(req.method), touches: [] };
  return format.challenge(op, baseUrlOf(req, svc.config.public_url), o);
}

/**
 * The error shape of a request: its format's body and challenge (the format is known once the
 * dispatcher found the repo or the entry), else the default. Set once, on the root scope.
 */
export function errorShapes(svc: Services): (req: FastifyRequest) => ErrorShape {
  return (req) => {
    const format = formatOf(req);
    return { body: format?.errorBody?.bind(format) ?? defaultErrorBody, challenge: (r) => challengeOf(r, svc) };
  };
}

function contextOf(req: FastifyRequest, svc: Services, repo: RepoDef, rest: string): RequestCtx {
  // Links are only written into documents: compute the base URL when a handler asks.
  return {
    repo,
    rest,
    get baseUrl() { return baseUrlOf(req, svc.config.public_url); },
    get repoUrl() { return `${baseUrlOf(req, svc.config.public_url)}/${repo.name}`; },
  };
}

/**
 * The one dispatcher. `/REPO/...`: the first path segment names the repo, its format's routes
 * take the rest. A format entry (`/v2/...`): the format's routes take the path after the prefix
 * and its `locate` finds the repo. Bodies are left unread (pass-through parser) so uploads
 * stream from `request.raw`.
 */
export async function repoDispatch(app: FastifyInstance, svc: Services): Promise<void> {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));

  for (const { format, entry } of ENTRIES) {
    const handle = async (req: FastifyRequest, reply: FastifyReply) => {
      req.artifact = { format: format.name };
      if (entry.headers) reply.headers(entry.headers);
      const pathOnly = (req.raw.url ?? '/').split('?')[0];
      const rest = pathOnly.slice(entry.prefix.length).replace(/^\//, '');
      return runEntry(format, entry, req, reply, svc, rest, (repo) => contextOf(req, svc, repo, rest));
    };
    app.all(entry.prefix, handle);
    app.all(`${entry.prefix}/`, handle);
    app.all(`${entry.prefix}/*`, handle);
  }

  const handle = (req: FastifyRequest, reply: FastifyReply) => dispatchRepoRequest(req, reply, svc);
  app.all('/:repo', handle);
  app.all('/:repo/*', handle);
}

/** One request under `/REPO/`: find the repo, build its context, run its format's operation. */
export async function dispatchRepoRequest(req: FastifyRequest, reply: FastifyReply, svc: Services): Promise<unknown> {
  const url = req.raw.url ?? '/';
  const pathOnly = url.split('?')[0];
  const slash = pathOnly.indexOf('/', 1);
  const rawName = slash === -1 ? pathOnly.slice(1) : pathOnly.slice(1, slash);
  const name = rawName.includes('%') ? decodePath(rawName) : rawName;
  const rest = slash === -1 ? '' : pathOnly.slice(slash + 1);
  if (RESERVED_NAMES.has(name)) throw new AppError('NOT_FOUND', 'not found');
  const repo = await svc.repos.get(name);
  if (!repo) throw new AppError('REPO_NOT_FOUND', `no repository named "${name}"`);
  const handler = formatHandler(repo.format);
  req.artifact = { repo: repo.name, format: repo.format };
  if (!handler) throw new AppError('NOT_FOUND', `format ${repo.format} is not served by this build`);
  return runOperation(handler, req, reply, svc, contextOf(req, svc, repo, rest));
}

