import type { FastifyReply, FastifyRequest } from 'fastify';
import { decodePath } from '../../lib/decode.js';
import { AppError } from '../../lib/errors.js';
import { resolveDoc, type ServedDoc } from '../../repos/resolve.js';
import { sendDocument, sendServed } from '../../server/send.js';
import type { FormatHandler } from '../types.js';
import { METADATA_SUFFIX, projectSource, resolvePyFile, rootSource } from './docs.js';
import { contentTypeOf, negotiate, renderProject, renderRoot } from './index-doc.js';
import { checkFilename, isValidName, normalizeName } from './names.js';
import { handleUpload } from './upload.js';

const qsOf = (query: URLSearchParams) => (query.toString() ? `?${query.toString()}` : '');

const flavorOf = (req: FastifyRequest, query: URLSearchParams) => negotiate(req.headers.accept, query.get('format') ?? undefined);

function redirect(reply: FastifyReply, location: string) {
  return reply.code(301).header('location', location).header('content-type', 'text/plain; charset=utf-8').send(`moved to ${location}\n`);
}

/** A rendered simple-index document with the contract headers, conditional GET and gzip (server/send.ts). */
function sendPage(req: FastifyRequest, reply: FastifyReply, served: ServedDoc<unknown>, body: string, contentType: string) {
  return sendDocument(req, reply, served, body, contentType, { headers: { 'cache-control': 'max-age=60' } });
}

/**
 * PyPI: the simple repository API (PEP 503 HTML, PEP 691 JSON, PEP 658
 * metadata, PEP 592 yanks) under `/REPO/simple/`, files under
 * `/REPO/packages/<project>/<filename>`, and twine's legacy upload API as a
 * POST to `/REPO/`. Kinds come from repos/: local pages are built from rows,
 * remote pages are the upstream's cached original parsed per request, virtual
 * pages merge members.
 */
export const pypi: FormatHandler = {
  name: 'pypi',

  // Raw paths: a project name or file name is decoded as one segment (an encoded `/` stays inside it).
  routes: [
    { method: 'POST', path: /^(?:legacy\/?)?$/, raw: true, action: 'write', handle: ({ req, reply, ctx, svc }) => handleUpload(req, reply, ctx, svc) },
    {
      method: 'GET', path: /^(?:simple)?$/, raw: true, action: 'read',
      handle: async ({ reply, ctx, query }) => redirect(reply, `${ctx.repoUrl}/simple/${qsOf(query)}`),
    },
    {
      method: 'GET', path: /^simple\/$/, raw: true, action: 'read',
      async handle({ req, reply, ctx, svc, query }) {
        const served = await resolveDoc(svc, ctx.repo, rootSource(svc));
        const f = flavorOf(req, query);
        return sendPage(req, reply, served, renderRoot(served.doc, ctx.repoUrl, f), contentTypeOf(f));
      },
    },
    {
      method: 'GET', path: /^simple\/([^/]+)(\/?)$/, raw: true, action: 'read', subject: ({ params }) => `simple/${decodePath(params[0])}/`,
      async handle({ req, reply, ctx, svc, query, params: [rawName, slash] }) {
        const name = decodePath(rawName);
        if (!isValidName(name)) throw new AppError('NOT_FOUND', `no project named ${JSON.stringify(name)}`);
        const project = normalizeName(name);
        if (name !== project || !slash) return redirect(reply, `${ctx.repoUrl}/simple/${project}/${qsOf(query)}`);
        const served = await resolveDoc(svc, ctx.repo, projectSource(svc, project));
        const f = flavorOf(req, query);
        return sendPage(req, reply, served, renderProject(served.doc, ctx.repoUrl, f), contentTypeOf(f));
      },
    },
    {
      method: 'GET', path: /^packages\/([^/]+)\/([^/]+)$/, raw: true, action: 'read', subject: ({ params }) => `packages/${decodePath(params[0])}/${decodePath(params[1])}`,
      async handle({ req, reply, ctx, svc, params: [rawName, rawFile] }) {
        const name = decodePath(rawName);
        let filename = decodePath(rawFile);
        if (!isValidName(name)) throw new AppError('NOT_FOUND', `no project named ${JSON.stringify(name)}`);
        const project = normalizeName(name);
        if (project !== name) return redirect(reply, `${ctx.repoUrl}/packages/${project}/${rawFile}`);
        const metadata = filename.endsWith(METADATA_SUFFIX);
        if (metadata) filename = filename.slice(0, -METADATA_SUFFIX.length);
        checkFilename(filename);
        const served = await resolvePyFile(svc, ctx.repo, project, filename, metadata);
        return sendServed(req, reply, served, svc, metadata ? { contentType: 'text/plain; charset=utf-8' } : {});
      },
    },
    {
      // twine posts to the repository root; anything else that writes is no endpoint of this API.
      method: ['POST', 'PUT', 'PATCH', 'DELETE'], path: /^/, raw: true, action: ({ req }) => (req.method === 'DELETE' ? 'delete' : 'write'),
      async handle({ req }) {
        if (req.method === 'POST') throw new AppError('METHOD_NOT_ALLOWED', 'uploads go to the repository root (twine upload --repository-url URL/REPO/)');
        throw new AppError('METHOD_NOT_ALLOWED', `${req.method} is not supported here`);
      },
    },
    {
      method: 'GET', path: /^/, raw: true, action: 'read',
      handle: async ({ ctx }) => { throw new AppError('NOT_FOUND', `${ctx.rest} is not part of the simple repository API`); },
    },
  ],
};
