import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../repos/services.js';
import type { RepoDef } from '../../storage/meta/types.js';
import { runWithHooks, type Action, type Operation } from '../pipeline.js';

/**
 * A management route through the same hooks as every repo request: `admin` with no repo (auth
 * requires an admin), or an action on the repo `repo()` names. The handler gets its Operation
 * (listings filter by it).
 */
export function guarded<R>(
  svc: Services,
  o: { action: Action; repo?: (req: FastifyRequest) => Promise<RepoDef>; subject?: (req: FastifyRequest) => string | undefined },
  handle: (req: FastifyRequest, reply: FastifyReply, op: Operation) => Promise<R>,
) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<R> => {
    const repo = o.repo ? await o.repo(req) : undefined;
    const op: Operation = { format: 'api', action: o.action, repo, touches: repo ? [{ repo, action: o.action }] : [], subject: o.subject?.(req) };
    return runWithHooks(op, { req, reply, svc }, () => handle(req, reply, op)) as Promise<R>;
  };
}
