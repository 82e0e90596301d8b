import type { FastifyReply, FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';
import { AppError } from '../../lib/errors.js';
import { safeRepoPath } from '../../lib/paths.js';
import { recordLocalFile, writeTarget } from '../../repos/local.js';
import { resolveDoc, resolveFile } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import type { Served } from '../../repos/types.js';
import { sendDocument, sendServed } from '../../server/send.js';
import { ingestStream } from '../../storage/ingest.js';
import type { RepoDef } from '../../storage/meta/types.js';
import { boundaryOf, parseMultipart } from '../../lib/multipart.js';
import type { FormatHandler, RequestCtx } from '../types.js';
import { chartFileName, isChartName, readChartYaml } from './chart.js';
import { removeFiles, type Actor } from '../../repos/writes.js';
import {
  findEntry, indexSource, INDEX_PATH, INDEX_TYPE, localIndexDoc, renderIndex, repoPath, withServerInfo, type Entry, type HelmIndex,
} from './index-doc.js';

const CHART_TYPE = 'application/gzip';
const FILE_RE = /^(?:charts\/)?([^/]+\.tgz)(\.prov)?$/;

/**
 * Helm chart repositories under /REPO/: `index.yaml` and the packages it lists, plus
 * ChartMuseum's API (`api/charts`) for `helm cm-push` and friends. A local repo's index is
 * derived on every write and stored; remote indexes are the upstream's, cached with the TTL
 * and rewritten to this server; virtual ones merge members.
 */
export const helm: FormatHandler = {
  name: 'helm',

  async handle(req: FastifyRequest, reply: FastifyReply, ctx: RequestCtx, svc: Services) {
    const rest = safeRepoPath(ctx.rest);
    const m = req.method;
    const read = m === 'GET' || m === 'HEAD';
    if (rest === INDEX_PATH && read) return sendIndex(req, reply, ctx, svc);
    if (rest === 'api/charts' || rest === 'api/charts/') {
      if (m === 'POST') return reply.code(201).send(await postCharts(req, ctx, svc));
      if (read) return reply.send(await apiListing(svc, ctx, (index) => Object.fromEntries([...index].map(([n, l]) => [n, l.map((e) => entryJson(e, ctx))]))));
    }
    const api = /^api\/charts\/([^/]+)(?:\/([^/]+))?$/.exec(rest);
    if (api) {
      const [, name, version] = api;
      if (m === 'DELETE' && version) return reply.send(await deleteChart(svc, await writeTarget(svc, ctx.repo), name, version, req.operation?.identity));
      if (read) {
        const body = await apiListing(svc, ctx, (index) => {
          const list = index.get(name) ?? [];
          if (!version) return list.length ? list.map((e) => entryJson(e, ctx)) : undefined;
          const e = version === 'latest' ? list[0] : list.find((x) => x.meta.version === version);
          return e ? entryJson(e, ctx) : undefined;
        });
        if (body === undefined) throw new AppError('NOT_FOUND', version ? `chart ${name} ${version} not found` : `chart ${name} not found`);
        return reply.send(body);
      }
    }
    const file = FILE_RE.exec(rest);
    if (file) {
      const [, chart, prov] = file;
      if (read) return sendServed(req, reply, await chartFile(svc, ctx.repo, chart, Boolean(prov)), svc, { contentType: prov ? 'text/plain' : CHART_TYPE });
      if (m === 'PUT' && !prov) {
        const target = await writeTarget(svc, ctx.repo);
        return reply.code(201).send(await saveChart(svc, target, req.raw, { force: forced(req), fileName: chart }));
      }
    }
    if (!read && m !== 'POST' && m !== 'PUT' && m !== 'DELETE') throw new AppError('METHOD_NOT_ALLOWED', `${m} is not supported here`);
    throw new AppError('NOT_FOUND', `${rest} is not part of a helm chart repository`);
  },
};

function forced(req: FastifyRequest): boolean {
  const q = new URLSearchParams((req.raw.url ?? '').split('?')[1] ?? '');
  return q.has('force') && q.get('force') !== 'false';
}

async function sendIndex(req: FastifyRequest, reply: FastifyReply, ctx: RequestCtx, svc: Services) {
  if (ctx.repo.kind === 'local') {
    // Stored bytes: streamed like any file, with the digest as ETag, Range and 304.
    const rec = await svc.derived.current(svc, ctx.repo, localIndexDoc);
    return sendServed(req, reply, { rec, source: 'local', servedBy: ctx.repo.name, size: rec.size }, svc, { contentType: INDEX_TYPE });
  }
  const served = await resolveDoc(svc, ctx.repo, indexSource(svc));
  const body = Buffer.from(withServerInfo(renderIndex(served.doc, (e) => `${ctx.repoUrl}/${e.file}`), repoPath(svc, ctx.repo)));
  return sendDocument(req, reply, served, body, INDEX_TYPE);
}

/** A ChartMuseum API answer built from the repo's index (any kind). */
async function apiListing<T>(svc: Services, ctx: RequestCtx, pick: (index: HelmIndex) => T): Promise<T> {
  return pick((await resolveDoc(svc, ctx.repo, indexSource(svc))).doc);
}

function entryJson(e: Entry, ctx: RequestCtx): Record<string, unknown> {
  return { ...e.meta, ...(e.created ? { created: e.created } : {}), ...(e.digest ? { digest: e.digest } : {}), urls: [`${ctx.repoUrl}/${e.file}`] };
}

/**
 * A package (or its .prov) for every kind. Local: its row. Remote: found through the upstream's
 * index (whatever host its URL names), verified against the entry's digest. Virtual: from the
 * member whose entry the merged index kept, so shadowed versions are never served.
 */
async function chartFile(svc: Services, repo: RepoDef, file: string, prov: boolean, depth = 0): Promise<Served> {
  const path = prov ? `${file}.prov` : file;
  if (repo.kind === 'local') return resolveFile(svc, repo, { path });
  const entry = findEntry((await resolveDoc(svc, repo, indexSource(svc))).doc, file);
  if (!entry) throw new AppError('NOT_FOUND', `${file} is not in the index of ${repo.name}`);
  if (repo.kind === 'virtual') {
    const member = entry.member ? await svc.repos.get(entry.member) : null;
    if (!member) throw new AppError('NOT_FOUND', `${file} is not in the index of ${repo.name}`);
    return chartFile(svc, member, file, prov, depth + 1);
  }
  const base = new URL(INDEX_PATH, svc.repos.upstreamSettings(repo).upstream);
  const url = new URL(entry.upstreamUrl!, base).toString();
  return resolveFile(svc, repo, {
    path, locate: () => (prov ? `${url}.prov` : url), rejectHtml: true,
    expect: !prov && entry.digest ? { digest: `sha256:${entry.digest}` } : undefined,
  });
}

interface Saved {
  saved: true;
  name: string;
  version: string;
  digest: string;
}

/**
 * Stores a chart package: streamed into the blob store, then its Chart.yaml read back (bounded)
 * and validated; only then is the row written and the index regenerated. A refused package
 * leaves an unreferenced blob that gc reaps after its grace period.
 */
async function saveChart(svc: Services, target: RepoDef, src: Readable | AsyncIterable<Buffer>, o: { force: boolean; fileName?: string }): Promise<Saved> {
  const maxSize = svc.config.uploads.max_size || undefined;
  const w = await ingestStream(svc, toReadable(src), { maxSize });
  const meta = await readChartYaml(await svc.blob.read(w.digest), 'chart package');
  const file = chartFileName(meta.name, meta.version);
  if (o.fileName !== undefined && o.fileName !== file) {
    throw new AppError('BAD_REQUEST', `file name ${o.fileName} does not match the chart's name and version (${file})`);
  }
  await recordLocalFile(svc, target, file, w.digest, w.size, { contentType: CHART_TYPE, meta: { kind: 'chart', chart: meta }, immutable: !o.force });
  await svc.derived.refresh(svc, target, localIndexDoc);
  return { saved: true, name: meta.name, version: meta.version, digest: w.digest.slice(7) };
}

function toReadable(src: Readable | AsyncIterable<Buffer>): Readable {
  return src instanceof Readable ? src : Readable.from(src, { objectMode: false });
}

/** `POST api/charts`: ChartMuseum's multipart form (`chart`, optional `prov`) or a raw package body. */
async function postCharts(req: FastifyRequest, ctx: RequestCtx, svc: Services): Promise<Saved> {
  const target = await writeTarget(svc, ctx.repo);
  const force = forced(req);
  if (!/^multipart\//i.test(req.headers['content-type'] ?? '')) return saveChart(svc, target, req.raw, { force });
  let saved: Saved | undefined;
  let prov: { digest: `sha256:${string}`; size: number } | undefined;
  for await (const part of parseMultipart(req.raw, boundaryOf(req.headers['content-type']))) {
    if (part.name === 'chart') {
      if (saved) throw new AppError('BAD_REQUEST', 'more than one chart part');
      saved = await saveChart(svc, target, part.body, { force });
    } else if (part.name === 'prov') {
      const w = await ingestStream(svc, toReadable(part.body), { maxSize: 1024 * 1024 });
      prov = { digest: w.digest, size: w.size };
    }
  }
  if (!saved) throw new AppError('BAD_REQUEST', 'no chart in the upload (expected a "chart" part)');
  if (prov) {
    await recordLocalFile(svc, target, `${chartFileName(saved.name, saved.version)}.prov`, prov.digest, prov.size, { contentType: 'text/plain', meta: { kind: 'prov' } });
  }
  return saved;
}

async function deleteChart(svc: Services, target: RepoDef, name: string, version: string, who?: Actor): Promise<{ deleted: true }> {
  if (!isChartName(name)) throw new AppError('NOT_FOUND', `chart ${name} not found`);
  const file = chartFileName(name, version);
  if (!(await svc.meta.files.get(target.name, file))) throw new AppError('NOT_FOUND', `chart ${name} ${version} not found`);
  await removeFiles(svc, who, target.name, [file, `${file}.prov`]);
  await svc.derived.refresh(svc, target, localIndexDoc);
  return { deleted: true };
}
