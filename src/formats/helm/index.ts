import type { FastifyReply, FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';
import { AppError } from '../../lib/errors.js';
import { storedDerived } from '../../repos/derived.js';
import { recordLocalFile, writeTarget } from '../../repos/local.js';
import { httpUrl, resolveListed, type ListedFile } from '../../repos/listed.js';
import { resolveDoc } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import { sendDocument, sendServed } from '../../server/send.js';
import { ingestStream } from '../../storage/ingest.js';
import type { RepoDef } from '../../storage/meta/types.js';
import { boundaryOf, parseMultipart } from '../../lib/multipart.js';
import type { FormatHandler, RequestCtx } from '../types.js';
import { chartFileName, isChartName, readChartYaml } from './chart.js';
import { removeFiles } from '../../repos/writes.js';
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

  routes: [
    { method: 'GET', path: /^index\.yaml$/, action: 'read', handle: ({ req, reply, ctx, svc }) => sendIndex(req, reply, ctx, svc) },
    { method: 'POST', path: /^api\/charts\/?$/, action: 'write', handle: async ({ req, reply, ctx, svc }) => reply.code(201).send(await postCharts(req, ctx, svc)) },
    {
      method: 'GET', path: /^api\/charts\/?$/, action: 'read',
      handle: async ({ reply, ctx, svc }) => reply.send(await apiListing(svc, ctx, (index) => Object.fromEntries([...index].map(([n, l]) => [n, l.map((e) => entryJson(e, ctx))])))),
    },
    {
      method: 'DELETE', path: /^api\/charts\/([^/]+)\/([^/]+)$/, action: 'delete',
      handle: async ({ reply, ctx, svc, params: [name, version] }) => reply.send(await deleteChart(svc, await writeTarget(svc, ctx.repo), name, version)),
    },
    {
      method: 'GET', path: /^api\/charts\/([^/]+)(?:\/([^/]+))?$/, action: 'read',
      async handle({ reply, ctx, svc, params: [name, version] }) {
        const body = await apiListing(svc, ctx, (index) => {
          const list = index.get(name) ?? [];
          if (!version) return list.length ? list.map((e) => entryJson(e, ctx)) : undefined;
          const e = version === 'latest' ? list[0] : list.find((x) => x.meta.version === version);
          return e ? entryJson(e, ctx) : undefined;
        });
        if (body === undefined) throw new AppError('NOT_FOUND', version ? `chart ${name} ${version} not found` : `chart ${name} not found`);
        return reply.send(body);
      },
    },
    {
      method: 'GET', path: FILE_RE, action: 'read',
      handle: async ({ req, reply, ctx, svc, params: [chart, prov] }) =>
        sendServed(req, reply, await resolveListed(svc, ctx.repo, chartFile(svc, chart, Boolean(prov))), svc, { contentType: prov ? 'text/plain' : CHART_TYPE }),
    },
    {
      method: 'PUT', path: /^(?:charts\/)?([^/]+\.tgz)$/, action: 'write',
      async handle({ req, reply, ctx, svc, params: [chart] }) {
        const target = await writeTarget(svc, ctx.repo);
        return reply.code(201).send(await saveChart(svc, target, req.raw, { force: forced(req), fileName: chart }));
      },
    },
  ],
};

function forced(req: FastifyRequest): boolean {
  const q = new URLSearchParams((req.raw.url ?? '').split('?')[1] ?? '');
  return q.has('force') && q.get('force') !== 'false';
}

async function sendIndex(req: FastifyRequest, reply: FastifyReply, ctx: RequestCtx, svc: Services) {
  // Local: the stored bytes, streamed like any file.
  const stored = await storedDerived(svc, ctx.repo, localIndexDoc);
  if (stored) return sendServed(req, reply, stored, svc, { contentType: INDEX_TYPE });
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
 * A package (or its .prov) as the repo's index lists it (repos/listed.ts). Remote: located through
 * the upstream's index (whatever host its URL names), verified against the entry's digest.
 * Virtual: from the member whose entry the merged index kept.
 */
function chartFile(svc: Services, file: string, prov: boolean): ListedFile<HelmIndex, Entry> {
  return {
    doc: indexSource(svc),
    path: prov ? `${file}.prov` : file,
    what: `${file}${prov ? '.prov' : ''} of the index`,
    find: (index) => findEntry(index, file),
    origin: (_index, entry) => entry.member,
    upstream(repo, entry) {
      const url = httpUrl(entry.upstreamUrl, file, new URL(INDEX_PATH, svc.repos.upstreamSettings(repo).upstream).toString());
      return { locate: () => (prov ? `${url}.prov` : url), expect: !prov && entry.digest ? { digest: `sha256:${entry.digest}` } : undefined };
    },
  };
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

async function deleteChart(svc: Services, target: RepoDef, name: string, version: string): Promise<{ deleted: true }> {
  if (!isChartName(name)) throw new AppError('NOT_FOUND', `chart ${name} not found`);
  const file = chartFileName(name, version);
  if (!(await svc.meta.files.get(target.name, file))) throw new AppError('NOT_FOUND', `chart ${name} ${version} not found`);
  await removeFiles(svc, target.name, [file, `${file}.prov`]);
  await svc.derived.refresh(svc, target, localIndexDoc);
  return { deleted: true };
}
