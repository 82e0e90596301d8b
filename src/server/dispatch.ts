import type { FastifyInstance, FastifyRequest } from 'fastify';
import { decodePath } from '../lib/decode.js';
import { AppError } from '../lib/errors.js';
import { formatHandler } from '../formats/index.js';
import type { RequestCtx } from '../formats/types.js';
import { RESERVED_NAMES } from '../repos/registry.js';
import type { Services } from '../repos/services.js';
import { defaultErrorBody, errorHandler } from './errors.js';
import { runOperation } from './pipeline.js';

declare module 'fastify' {
  interface FastifyRequest {
    artifact?: { repo?: string; format?: string };
  }
}

export function baseUrlOf(req: FastifyRequest, publicUrl: string): string {
  if (publicUrl) return publicUrl.replace(/\/+$/, '');
  return `${req.protocol}://${req.headers.host ?? 'localhost'}`;
}

/**
 * `/REPO/...`: the first path segment names the repo, its format's handler
 * takes the rest. Bodies are left unread (pass-through parser) so uploads
 * stream from `request.raw`.
 */
export async function repoDispatch(app: FastifyInstance, svc: Services): Promise<void> {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));
  app.setErrorHandler((err, req, reply) => {
    const handler = req.artifact?.format ? formatHandler(req.artifact.format) : undefined;
    return errorHandler(handler?.errorBody?.bind(handler) ?? defaultErrorBody)(err as Error, req, reply);
  });

  const handle = async (req: FastifyRequest, reply: import('fastify').FastifyReply) => {
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
    // Links are only written into documents: compute the base URL when a handler asks.
    const ctx: RequestCtx = {
      repo,
      rest,
      get baseUrl() { return baseUrlOf(req, svc.config.public_url); },
      get repoUrl() { return `${baseUrlOf(req, svc.config.public_url)}/${repo.name}`; },
    };
    return runOperation(handler, req, reply, svc, ctx);
  };
  app.all('/:repo', handle);
  app.all('/:repo/*', handle);
}
