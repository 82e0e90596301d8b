import type { FastifyReply, FastifyRequest } from 'fastify';
import { sha256 } from '../lib/digest.js';

/** Where a served metadata document came from (a resolved document, see repos/resolve.ts). */
export interface DocOrigin {
  source: string;
  servedBy: string;
  staleAge?: number;
}

/**
 * A metadata document (index, listing) with the contract headers: X-Artifact-*, a strong ETag of
 * the bytes sent, conditional GET (304), stale markers, and `Vary` when the body depends on a
 * request header.
 */
export function sendDocument(req: FastifyRequest, reply: FastifyReply, origin: DocOrigin, body: Buffer | string,
  contentType: string, o: { vary?: string; cacheControl?: string } = {}): FastifyReply {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  const etag = `"${sha256(bytes).slice(7)}"`;
  reply.header('x-artifact-source', origin.source);
  reply.header('x-artifact-repo', origin.servedBy);
  if (o.vary) reply.header('vary', o.vary);
  reply.header('etag', etag);
  reply.header('cache-control', o.cacheControl ?? 'max-age=60');
  if (origin.staleAge !== undefined) {
    reply.header('x-artifact-stale', 'true');
    reply.header('age', String(origin.staleAge));
  }
  const inm = req.headers['if-none-match'];
  if (inm && inm.split(',').some((t) => t.trim().replace(/^W\//, '') === etag || t.trim() === '*')) return reply.code(304).send();
  reply.header('content-type', contentType);
  return reply.send(bytes);
}
