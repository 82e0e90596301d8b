import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../lib/errors.js';
import type { Services } from '../../repos/services.js';
import type { FormatHandler, RequestCtx } from '../types.js';
import { dockerErrorBody } from './errors.js';
import { dockerGc } from './gc.js';
import { DOCKER_CONFIG, DOCKER_OPTIONS } from './options.js';
import { dockerRoutes } from './routes.js';

/** Docker / OCI distribution: everything lives under /v2/ (routes.ts); /REPO/ itself serves nothing. */
export const docker: FormatHandler = {
  name: 'docker',
  options: DOCKER_OPTIONS,
  config: DOCKER_CONFIG,
  async handle(_req: FastifyRequest, _reply: FastifyReply, ctx: RequestCtx, _svc: Services) {
    throw new AppError('NOT_FOUND', `docker repositories are served under /v2/${ctx.repo.name}/`);
  },
  register: dockerRoutes,
  errorBody: dockerErrorBody,
  gc: dockerGc,
};
