import { parseDigest } from '../../lib/digest.js';
import { AppError } from '../../lib/errors.js';
import { matchesAny } from '../../lib/glob.js';
import { putLocalFile, writeTarget } from '../../repos/local.js';
import { resolveFile } from '../../repos/resolve.js';
import { sendServed } from '../../server/send.js';
import type { FormatHandler } from '../types.js';
import { removeFile } from '../../repos/writes.js';
import { GENERIC_OPTIONS } from './options.js';

/**
 * Paths a generic remote treats as mutable metadata (TTL + revalidation) unless the repo sets `mutable`:
 * listings and pointers, and the indexes of package mirrors used through a generic remote. Files named
 * by their content stay immutable (apt's `by-hash/SHA256/<hex>`, rpm's `<hash>-primary.xml.gz`, pool/).
 */
export const DEFAULT_MUTABLE = [
  '**/*.json', '**/*.xml', '**/*.yaml', '**/*.yml', '**/*.txt', '**/latest', '**/latest/**', '**/SHA256SUMS*',
  // apt (Debian, Ubuntu), also flat repositories
  '**/InRelease', '**/Release', '**/Release.gpg', '**/dists/**/Packages*', '**/dists/**/Sources*', '**/dists/**/Contents-*',
  '**/dists/**/Translation-*', '**/dists/**/Components-*', '**/dists/**/Index',
  // rpm (repomd.xml itself is **/*.xml), alpine
  '**/repomd.xml.asc', '**/repomd.xml.key', '**/APKINDEX.tar.gz',
];

/** Plain files at any path: the model for every other format. */
export const generic: FormatHandler = {
  name: 'generic',
  options: GENERIC_OPTIONS,
  routes: [
    {
      method: 'GET', path: /^.+$/, action: 'read',
      async handle({ req, reply, svc, ctx, path }) {
        // Only remote repos (directly or as members) look at `mutable`; a local row is served as it is.
        const mutable = matchesAny(path, (ctx.repo.options.mutable as string[] | undefined) ?? DEFAULT_MUTABLE);
        return sendServed(req, reply, await resolveFile(svc, ctx.repo, { path, mutable }), svc);
      },
    },
    {
      method: 'PUT', path: /^.+$/, action: 'write',
      async handle({ req, reply, svc, ctx, path }) {
        const target = await writeTarget(svc, ctx.repo);
        const checksum = req.headers['x-checksum-sha256'];
        const length = req.headers['content-length'];
        const rec = await putLocalFile(svc, target, path, req.raw, {
          expect: {
            digest: checksum ? parseDigest(`sha256:${String(checksum).toLowerCase()}`) : undefined,
            size: length !== undefined ? Number(length) : undefined,
          },
          contentType: storedContentType(req.headers['content-type']),
        });
        return reply.code(201).header('location', `${ctx.baseUrl}/${target.name}/${path}`).send({
          repo: target.name, path, digest: rec.digest, sha256: rec.digest.slice(7), size: rec.size,
        });
      },
    },
    {
      method: 'DELETE', path: /^.+$/, action: 'delete',
      async handle({ reply, svc, ctx, path }) {
        const target = await writeTarget(svc, ctx.repo);
        if (!(await svc.meta.files.get(target.name, path))) throw new AppError('NOT_FOUND', `${path} not found in ${target.name}`);
        await removeFile(svc, target.name, path);
        return reply.code(204).send();
      },
    },
  ],
};

/** Content types worth keeping from an upload (curl and friends label raw bodies as forms). */
function storedContentType(ct: string | undefined): string | undefined {
  if (!ct || /^application\/(octet-stream|x-www-form-urlencoded)\b/i.test(ct) || /^multipart\//i.test(ct)) return undefined;
  return ct;
}
