import type { FastifyReply, FastifyRequest } from 'fastify';
import { pipeline } from 'node:stream';
import { AppError } from '../../lib/errors.js';
import { safeRepoPath } from '../../lib/paths.js';
import { collect } from '../../lib/streams.js';
import { writeLocalRow, writeTarget } from '../../repos/local.js';
import { resolveFile } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import { sendDocument } from '../../server/doc.js';
import { sendServed } from '../../server/send.js';
import { ingestStream } from '../../storage/ingest.js';
import type { RepoDef } from '../../storage/meta/types.js';
import type { FormatHandler, GcContext, RequestCtx } from '../types.js';
import { RpmHeaderTap } from './header.js';
import { remotePackage, remoteRepodataFile, remoteRepomd, repomdChecksums } from './remote.js';
import { localRepodata, REPOMD_PATH, XML_TYPE } from './repodata.js';

const RPM_TYPE = 'application/x-rpm';

/**
 * yum/dnf repositories under /REPO/ (the baseurl): packages at any path, and `repodata/`, which
 * a local repo derives from the headers parsed at upload (repomd.xml switched last).
 */
export const rpm: FormatHandler = {
  name: 'rpm',

  async handle(req: FastifyRequest, reply: FastifyReply, ctx: RequestCtx, svc: Services) {
    const path = safeRepoPath(ctx.rest);
    const m = req.method;
    const isPackage = path.endsWith('.rpm') && !path.startsWith('repodata/');
    if (m === 'GET' || m === 'HEAD') {
      const contentType = isPackage ? RPM_TYPE : path.endsWith('.xml') ? XML_TYPE : undefined;
      if (ctx.repo.kind === 'virtual') throw new AppError('NOT_FOUND', 'virtual rpm repositories are not served yet');
      if (ctx.repo.kind === 'remote') {
        if (path === REPOMD_PATH) {
          const { served, body } = await remoteRepomd(svc, ctx.repo);
          return sendDocument(req, reply, served, body, XML_TYPE);
        }
        const served = isPackage ? await remotePackage(svc, ctx.repo, path)
          : path.startsWith('repodata/repomd.xml') ? await resolveFile(svc, ctx.repo, { path, mutable: true }) // .asc, .key
          : path.startsWith('repodata/') ? await remoteRepodataFile(svc, ctx.repo, path)
          : await resolveFile(svc, ctx.repo, { path });
        return sendServed(req, reply, served, svc, { contentType });
      }
      if (path === REPOMD_PATH) await svc.derived.current(svc, ctx.repo, localRepodata);
      return sendServed(req, reply, await resolveFile(svc, ctx.repo, { path }), svc, { contentType });
    }
    if (m === 'PUT' && isPackage) {
      const target = await writeTarget(svc, ctx.repo);
      return reply.code(201).send(await savePackage(req, svc, target, path));
    }
    if (m === 'DELETE' && isPackage) {
      const target = await writeTarget(svc, ctx.repo);
      if (!(await svc.meta.files.get(target.name, path))) throw new AppError('NOT_FOUND', `${path} not found in ${target.name}`);
      await svc.meta.files.remove(target.name, path);
      await svc.derived.refresh(svc, target, localRepodata);
      return reply.code(204).send();
    }
    if (m === 'PUT' || m === 'DELETE') throw new AppError('BAD_REQUEST', `only .rpm packages outside repodata/ can be written (got ${path})`);
    throw new AppError('METHOD_NOT_ALLOWED', `${m} is not supported here`);
  },

  gc: rpmGc,
};

/**
 * Streams a package into the blob store while its header is parsed on the way: an upload that is
 * not an RPM fails before anything is published. The parsed fields go into the row, so repodata
 * is regenerated from rows alone.
 */
async function savePackage(req: FastifyRequest, svc: Services, repo: RepoDef, path: string) {
  if (await svc.meta.files.get(repo.name, path)) throw new AppError('CONFLICT', `${path} already exists in ${repo.name} and cannot be overwritten`);
  const tap = new RpmHeaderTap();
  const src = pipeline(req.raw, tap, () => {});
  const w = await ingestStream(svc, src, { maxSize: svc.config.uploads.max_size || undefined }, (mt, s) =>
    writeLocalRow(mt, repo, path, s.digest, s.size, { contentType: RPM_TYPE, meta: { kind: 'rpm', rpm: tap.meta }, immutable: true }));
  await svc.derived.refresh(svc, repo, localRepodata);
  const p = tap.meta!;
  return { repo: repo.name, path, name: p.name, epoch: p.epoch, version: p.version, release: p.release, arch: p.arch, sha256: w.digest.slice(7), size: w.size };
}

/**
 * Old repodata generations stay served (a client that read the previous repomd.xml still finds
 * what it names) until gc: then rows that the current repomd.xml does not name and that are older
 * than gc.grace go, and the core sweep reclaims their blobs.
 */
async function rpmGc(ctx: GcContext): Promise<void> {
  const { svc } = ctx;
  const cutoff = ctx.now - svc.config.gc.grace;
  for (const repo of await svc.repos.list()) {
    if (repo.format !== 'rpm' || repo.kind !== 'local') continue;
    const current = await svc.meta.files.get(repo.name, REPOMD_PATH);
    if (!current) continue;
    const keep = repomdChecksums((await collect(await svc.blob.read(current.digest))).toString('utf8'));
    for await (const f of svc.meta.files.list(repo.name, 'repodata/')) {
      if (f.path === REPOMD_PATH || keep.has(f.path) || f.fetchedAt >= cutoff) continue;
      ctx.report({ action: 'delete-row', repo: repo.name, path: f.path, bytes: f.size });
      if (!ctx.dryRun) await svc.meta.files.remove(repo.name, f.path);
    }
  }
}
