import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, isAppError, publicMessage, statusOf } from '../lib/errors.js';

/** The default error body: `{"error":{"code","message"}}`. */
export function defaultErrorBody(code: string, message: string): unknown {
  return { error: { code, message } };
}

/** Stable code for any error (fastify's own errors keep theirs, mapped to our vocabulary by status). */
export function codeOf(err: unknown): string {
  if (isAppError(err)) return err.code;
  const status = statusOf(err);
  if (status === 413) return 'TOO_LARGE';
  if (status === 415 || status === 400) return 'BAD_REQUEST';
  if (status === 404) return 'NOT_FOUND';
  return status >= 500 ? 'INTERNAL' : 'BAD_REQUEST';
}

/** The default 401 challenge (npm, pypi, generic, the management API). */
export const BASIC_CHALLENGE = 'Basic realm="artifactapi", charset="UTF-8"';

/** How a protocol answers errors: its body shape and the `WWW-Authenticate` value of a 401. */
export interface ErrorShape {
  body(code: string, message: string, status: number): unknown;
  challenge?(req: FastifyRequest): string | undefined;
}

/** The error handler for one fixed body shape (a scope that serves one protocol). */
export function errorHandler(body: ErrorShape['body'] = defaultErrorBody) {
  return errorHandlerFor(() => ({ body }));
}

/**
 * One error handler, parameterised by the protocol's error shape (per request: the format that
 * serves it). 5xx are logged once with the error; 4xx at debug. Never a stack trace to clients.
 * Every 401 carries a challenge (unless the handler set its own).
 */
export function errorHandlerFor(shapeOf: (req: FastifyRequest) => ErrorShape) {
  return (err: FastifyError | AppError | Error, req: FastifyRequest, reply: FastifyReply) => {
    const shape = shapeOf(req);
    let status = statusOf(err);
    if (status === 499) status = 400; // the client is gone; nothing reaches it anyway
    const code = codeOf(err);
    if (status >= 500) req.log.error({ err, code }, 'request failed');
    else req.log.debug({ code, msg: (err as Error).message }, 'request refused');
    if (reply.sent || reply.raw.headersSent) {
      reply.raw.destroy();
      return;
    }
    reply.code(status).header('content-type', 'application/json; charset=utf-8');
    if (status === 503) reply.header('retry-after', '1');
    if (isAppError(err) && err.headers) reply.headers(err.headers);
    if (status === 401 && !reply.hasHeader('www-authenticate')) reply.header('www-authenticate', shape.challenge?.(req) ?? BASIC_CHALLENGE);
    return reply.send(shape.body(code, publicMessage(err), status));
  };
}
