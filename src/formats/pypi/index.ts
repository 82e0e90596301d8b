import type { FastifyReply, FastifyRequest } from 'fastify';
import { decodePath } from '../../lib/decode.js';
import { AppError } from '../../lib/errors.js';
import { resolveDoc, type ServedDoc } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import { sendDoc, sendServed } from '../../server/send.js';
import type { FormatHandler, RequestCtx } from '../types.js';
import { docEtag, METADATA_SUFFIX, projectSource, resolvePyFile, rootSource } from './docs.js';
import { contentTypeOf, negotiate, renderProject, renderRoot } from './index-doc.js';
import { checkFilename, isValidName, normalizeName } from './names.js';
import { handleUpload } from './upload.js';

function queryOf(req: FastifyRequest): URLSearchParams {
  const url = req.raw.url ?? '';
  const q = url.indexOf('?');
  return new URLSearchParams(q >= 0 ? url.slice(q + 1) : '');
}

function redirect(reply: FastifyReply, location: string) {
  return reply.code(301).header('location', location).header('content-type', 'text/plain; charset=utf-8').send(`moved to ${location}\n`);
}

/** A rendered simple-index document with the contract headers, conditional GET and gzip (server/send.ts). */
function sendPage(req: FastifyRequest, reply: FastifyReply, served: ServedDoc<unknown>, body: string, contentType: string) {
  reply.header('cache-control', 'max-age=60');
  return sendDoc(req, reply, served, { body: Buffer.from(body), etag: docEtag(body) }, contentType);
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

  async handle(req: FastifyRequest, reply: FastifyReply, ctx: RequestCtx, svc: Services) {
    const rest = ctx.rest;
    if (req.method === 'POST') {
      if (rest === '' || rest === 'legacy' || rest === 'legacy/') return handleUpload(req, reply, ctx, svc);
      throw new AppError('METHOD_NOT_ALLOWED', 'uploads go to the repository root (twine upload --repository-url URL/REPO/)');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new AppError('METHOD_NOT_ALLOWED', `${req.method} is not supported here`);

    const query = queryOf(req);
    const qs = query.toString() ? `?${query.toString()}` : '';
    if (rest === '' || rest === 'simple') return redirect(reply, `${ctx.repoUrl}/simple/${qs}`);
    const flavor = () => negotiate(req.headers.accept, query.get('format') ?? undefined);

    if (rest === 'simple/') {
      const served = await resolveDoc(svc, ctx.repo, rootSource(svc));
      const f = flavor();
      return sendPage(req, reply, served, renderRoot(served.doc, ctx.repoUrl, f), contentTypeOf(f));
    }

    const proj = /^simple\/([^/]+)(\/?)$/.exec(rest);
    if (proj) {
      const name = decodePath(proj[1]);
      if (!isValidName(name)) throw new AppError('NOT_FOUND', `no project named ${JSON.stringify(name)}`);
      const project = normalizeName(name);
      if (name !== project || !proj[2]) return redirect(reply, `${ctx.repoUrl}/simple/${project}/${qs}`);
      const served = await resolveDoc(svc, ctx.repo, projectSource(svc, project));
      const f = flavor();
      return sendPage(req, reply, served, renderProject(served.doc, ctx.repoUrl, f), contentTypeOf(f));
    }

    const file = /^packages\/([^/]+)\/([^/]+)$/.exec(rest);
    if (file) {
      const name = decodePath(file[1]);
      let filename = decodePath(file[2]);
      if (!isValidName(name)) throw new AppError('NOT_FOUND', `no project named ${JSON.stringify(name)}`);
      const project = normalizeName(name);
      if (project !== name) return redirect(reply, `${ctx.repoUrl}/packages/${project}/${file[2]}`);
      const metadata = filename.endsWith(METADATA_SUFFIX);
      if (metadata) filename = filename.slice(0, -METADATA_SUFFIX.length);
      checkFilename(filename);
      const served = await resolvePyFile(svc, ctx.repo, project, filename, metadata);
      return sendServed(req, reply, served, svc, metadata ? { contentType: 'text/plain; charset=utf-8' } : {});
    }
    throw new AppError('NOT_FOUND', `${rest} is not part of the simple repository API`);
  },
};
