import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { decodePath } from '../../lib/decode.js';
import { AppError } from '../../lib/errors.js';
import { writeTarget } from '../../repos/local.js';
import type { Services } from '../../repos/services.js';
import { errorHandler } from '../../server/errors.js';
import { deleteBlob, getBlob } from './blobs.js';
import { dockerErrorBody } from './errors.js';
import { catalog, listTags, referrers } from './listings.js';
import { deleteManifest, getManifest, putManifest } from './manifests.js';
import { parseV2Path, resolveName } from './names.js';
import { cancelUpload, finishUpload, patchUpload, startUpload, uploadStatus } from './uploads.js';

const API_VERSION = { 'docker-distribution-api-version': 'registry/2.0' };

/** The registry API under /v2/, in its own scope: pass-through bodies, docker error bodies. */
export async function dockerRoutes(app: FastifyInstance, svc: Services): Promise<void> {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));
  app.setErrorHandler(errorHandler(dockerErrorBody));
  app.addHook('onRequest', async (_req, reply) => {
    reply.headers(API_VERSION);
  });
  const handle = (req: FastifyRequest, reply: FastifyReply) => route(req, reply, svc);
  app.all('/v2', handle);
  app.all('/v2/', handle);
  app.all('/v2/*', handle);
}

async function route(req: FastifyRequest, reply: FastifyReply, svc: Services): Promise<unknown> {
  const url = req.raw.url ?? '/';
  const rawPath = url.split('?')[0].replace(/^\/v2\/?/, '');
  const path = decodePath(rawPath, 'NAME_INVALID', 'malformed path');
  const r = parseV2Path(path);
  if (!r) throw new AppError('NAME_UNKNOWN', 'not found');
  const m = req.method;
  if (r.kind === 'base') {
    if (m !== 'GET' && m !== 'HEAD') throw new AppError('UNSUPPORTED', `${m} not supported`);
    return reply.header('content-type', 'application/json').send(m === 'HEAD' ? undefined : {});
  }
  if (r.kind === 'catalog') {
    if (m !== 'GET') throw new AppError('UNSUPPORTED', `${m} not supported`);
    return catalog(req, reply, svc);
  }
  const ns = (req.query as Record<string, string | undefined>).ns;
  const t = await resolveName(svc, r.name, ns);
  req.artifact = { repo: t.repo.name, format: 'docker' };
  const writable = async () => {
    try {
      return await writeTarget(svc, t.repo);
    } catch {
      throw new AppError('UNSUPPORTED', `${t.repo.name} is a ${t.repo.kind} repository and takes no pushes`);
    }
  };
  switch (r.kind) {
    case 'tags':
      if (m !== 'GET') break;
      return listTags(req, reply, svc, t);
    case 'referrers':
      if (m !== 'GET') break;
      return referrers(req, reply, svc, t, r.digest);
    case 'blob':
      if (m === 'GET' || m === 'HEAD') return getBlob(req, reply, svc, t, r.digest);
      if (m === 'DELETE') return deleteBlob(reply, svc, await writable(), t.image, r.digest);
      break;
    case 'manifest':
      if (m === 'GET' || m === 'HEAD') return getManifest(req, reply, svc, t, r.reference);
      if (m === 'PUT') return putManifest(req, reply, svc, t, await writable(), r.reference);
      if (m === 'DELETE') return deleteManifest(reply, svc, t, await writable(), r.reference);
      break;
    case 'upload': {
      const target = await writable();
      if (!r.id) {
        if (m === 'POST') return startUpload(req, reply, svc, t, target);
        break;
      }
      if (m === 'PATCH') return patchUpload(req, reply, svc, t, target, r.id);
      if (m === 'PUT') return finishUpload(req, reply, svc, t, target, r.id);
      if (m === 'GET') return uploadStatus(reply, svc, t, target, r.id);
      if (m === 'DELETE') return cancelUpload(reply, svc, t, target, r.id);
      break;
    }
  }
  throw new AppError('UNSUPPORTED', `${m} not supported here`);
}
