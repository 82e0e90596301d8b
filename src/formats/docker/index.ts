import { AppError } from '../../lib/errors.js';
import type { FormatHandler } from '../types.js';
import { dockerErrorBody } from './errors.js';
import { dockerGc } from './gc.js';
import { DOCKER_CONFIG, DOCKER_OPTIONS } from './options.js';
import { decodeV2Path, dockerChallenge, dockerEntry, dockerNotFound } from './routes.js';

/** Docker / OCI distribution: everything lives under /v2/ (routes.ts); /REPO/ itself serves nothing. */
export const docker: FormatHandler = {
  name: 'docker',
  options: DOCKER_OPTIONS,
  config: DOCKER_CONFIG,
  routes: [
    {
      method: ['GET', 'PUT', 'POST', 'PATCH', 'DELETE'], path: /^/, raw: true, action: 'read',
      async handle({ ctx }) {
        throw new AppError('NOT_FOUND', `docker repositories are served under /v2/${ctx.repo.name}/`);
      },
    },
  ],
  entry: dockerEntry,
  decodePath: decodeV2Path,
  errorBody: dockerErrorBody,
  challenge: dockerChallenge,
  notFound: dockerNotFound,
  gc: dockerGc,
};
