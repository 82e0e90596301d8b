import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, { LogController, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Services } from '../repos/services.js';
import { healthApi } from './api/health.js';
import { repositoriesApi } from './api/repositories.js';
import { auditApi } from './api/audit.js';
import { metricsApi } from './api/metrics.js';
import { entryOf, errorShapes, repoDispatch } from './dispatch.js';
import { defaultErrorBody, errorHandlerFor } from './errors.js';
import { withHops } from '../upstream/hops.js';
import { identitiesApi } from '../auth/api.js';
import { installAuth } from '../auth/plugin.js';

/** Builds the HTTP app over opened services. Never listens (listen.ts and tests do). */
export async function buildApp(svc: Services): Promise<FastifyInstance> {
  const bounds = svc.config.server;
  const app = Fastify({
    loggerInstance: svc.log,
    logController: new LogController({ disableRequestLogging: true }),
    // X-Forwarded-For/-Proto/-Host are believed only from the proxies server.trust_proxy names.
    trustProxy: bounds.trust_proxy,
    routerOptions: { maxParamLength: 8192 },
    bodyLimit: svc.config.limits.metadata_body,
    return503OnClosing: false,
    // Slow clients must not hold every socket (server.* bounds). Node checks headers/request timeouts
    // every connectionsCheckingInterval: keep that well below the shortest of them.
    requestTimeout: bounds.request_timeout,
    keepAliveTimeout: bounds.keep_alive_timeout,
    http: { headersTimeout: bounds.headers_timeout, connectionsCheckingInterval: Math.min(30_000, Math.max(100, bounds.headers_timeout / 4)) },
    // Malformed URLs and the like, rejected before routing: same body shape as every other error.
    // Under a format entry (/v2/) in that format's shape (a malformed path there is NAME_INVALID).
    frameworkErrors: (err, req, reply) => {
      const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 400;
      const message = status === 400 ? err.message : 'internal error';
      const entry = entryOf(req.raw.url ?? '');
      const body = entry?.format.errorBody
        ? entry.format.errorBody(status === 400 ? 'INVALID_PATH' : 'INTERNAL', message, status)
        : defaultErrorBody(status === 400 ? 'BAD_REQUEST' : 'INTERNAL', message);
      void (reply as FastifyReply).code(status).send(body);
    },
  });

  app.server.maxConnections = bounds.max_connections;

  app.addHook('onRequest', (req, _reply, done) => {
    try {
      withHops(req.headers.via, done);
    } catch (err) {
      done(err as Error);
    }
  });

  // One line per request, with what served it.
  app.addHook('onResponse', (req, reply, done) => {
    // Bytes moved: the upload's size for writes, the response's for reads.
    const bytes = req.method === 'PUT' || req.method === 'POST' || req.method === 'PATCH' ? req.headers['content-length'] : reply.getHeader('content-length');
    const repo = (reply.getHeader('x-artifact-repo') as string | undefined) ?? req.artifact?.repo;
    const source = reply.getHeader('x-artifact-source') as string | undefined;
    req.log.info({
      method: req.method, url: loggableUrl(req.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime),
      repo, source, bytes: bytes !== undefined ? Number(bytes) : undefined,
    }, 'request');
    const sent = reply.getHeader('content-length');
    const received = req.headers['content-length'];
    svc.metrics.request({
      repo: req.operation?.repo?.name ?? req.artifact?.repo, format: req.operation?.format ?? req.artifact?.format,
      method: req.method, status: reply.statusCode, source, seconds: reply.elapsedTime / 1000,
      sent: sent !== undefined && req.method !== 'HEAD' ? Number(sent) || 0 : 0, received: received !== undefined ? Number(received) || 0 : 0,
    });
    done();
  });

  // Node's closeIdleConnections (run by server.close and the sweep below) takes a response as done once
  // end() was called and destroys its socket, cutting a tail still queued behind a slow reader (the
  // held-back, hash-checked last chunk). Ours closes only sockets with nothing left to send.
  const sockets = new Set<Socket>();
  app.server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  app.server.closeIdleConnections = () => {
    for (const s of sockets) {
      const res = (s as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
      if ((!res || res.writableFinished) && s.writableLength === 0) s.destroy();
    }
  };

  // Closing: keep dropping keep-alive connections as they go idle (fastify drops only those idle at
  // the start), so in-flight requests finish and the server does not wait out the keep-alive timeout.
  let idleSweeper: NodeJS.Timeout | undefined;
  app.addHook('preClose', async () => {
    idleSweeper = setInterval(() => app.server.closeIdleConnections(), 100);
    idleSweeper.unref();
  });
  app.addHook('onClose', async () => clearInterval(idleSweeper));

  app.setErrorHandler(errorHandlerFor(errorShapes(svc)));
  app.setNotFoundHandler((_req, reply) => reply.code(404).send({ error: { code: 'NOT_FOUND', message: 'not found' } }));

  // Auth first: its onRequest hook must see every route, and /v2/token must be routed before /v2/*.
  await installAuth(app, svc, svc.auth);
  await app.register(async (scope) => identitiesApi(scope, svc, svc.auth));
  await app.register(async (scope) => healthApi(scope, svc));
  await app.register(async (scope) => repositoriesApi(scope, svc));
  await app.register(async (scope) => auditApi(scope, svc));
  await app.register(async (scope) => metricsApi(scope, svc));
  await app.register(async (scope) => repoDispatch(scope, svc));
  return app;
}

/** A URL fit for the log: tokens a client puts in the path (`npm logout`) or query, and userinfo, masked. */
export function loggableUrl(url: string): string {
  return url
    .replace(/(\/-\/user\/token\/)[^/?#]+/g, '$1***')
    .replace(/aat_[A-Za-z0-9_-]+/g, 'aat_***')
    .replace(/([?&](?:token|access_token|password|secret)=)[^&#]*/gi, '$1***')
    .replace(/\/\/[^/@?#]*@/, '//***@');
}
