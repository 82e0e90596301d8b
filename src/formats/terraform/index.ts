import { writeTarget } from '../../repos/local.js';
import { resolveDoc } from '../../repos/resolve.js';
import type { Route } from '../../server/pipeline.js';
import { docHeaders, sendDocument, sendServed } from '../../server/send.js';
import type { FormatHandler } from '../types.js';
import { discoveryEntry } from './discovery.js';
import { mirrorIndex, mirrorVersion } from './mirror.js';
import { TERRAFORM_CONFIG, TERRAFORM_OPTIONS } from './options.js';
import { moduleArchive, moduleLocation, moduleVersionsSource, renderModuleVersions, saveModule, type ArchiveExt } from './modules.js';
import { JSON_TYPE, moduleAddr, providerAddr, ZIP_TYPE } from './names.js';
import { providerDownload, providerFile, renderDownload, renderVersions, saveProvider, versionsSource } from './providers.js';

const SEG = '([^/]+)';
const PROVIDER = `^v1/providers/${SEG}/${SEG}`;
const MODULE = `^v1/modules/${SEG}/${SEG}/${SEG}`;

const json = (body: unknown) => JSON.stringify(body);

/**
 * Terraform under /REPO/: the provider registry protocol (`v1/providers/`), the module registry
 * protocol (`v1/modules/`) and the provider network mirror protocol (`HOST/NS/TYPE/…`), all from
 * the same data. Local repos take provider zips and module archives by PUT and sign each
 * version's SHA256SUMS with the repo's gpg key; remote ones read the upstream registry (found by
 * its service discovery) and verify zips against its signed SHA256SUMS before caching; virtual
 * ones merge versions lists, the first member winning per version.
 */
const routes: Route[] = [
  {
    method: 'GET', path: new RegExp(`${PROVIDER}/versions$`), action: 'read',
    async handle({ req, reply, svc, ctx, params: [ns, type] }) {
      const served = await resolveDoc(svc, ctx.repo, versionsSource(svc, providerAddr(ns, type)));
      return sendDocument(req, reply, served, json(renderVersions(served.doc)), JSON_TYPE);
    },
  },
  {
    method: 'GET', path: new RegExp(`${PROVIDER}/${SEG}/download/${SEG}/${SEG}$`), action: 'read',
    async handle({ req, reply, svc, ctx, params: [ns, type, version, os, arch] }) {
      const d = await providerDownload(svc, ctx.repo, providerAddr(ns, type), version, os, arch, { signed: true });
      return sendDocument(req, reply, d, json(renderDownload(d, ctx.repoUrl)), JSON_TYPE);
    },
  },
  {
    method: 'PUT', path: new RegExp(`${PROVIDER}/${SEG}/${SEG}_${SEG}\\.zip$`), action: 'write',
    async handle({ req, reply, svc, ctx, query, params: [ns, type, version, os, arch] }) {
      const target = await writeTarget(svc, ctx.repo);
      const protocols = (query.get('protocols') ?? '5.0').split(',').map((x) => x.trim()).filter(Boolean);
      return reply.code(201).send(await saveProvider(svc, target, providerAddr(ns, type, 'BAD_REQUEST'), version, os, arch, req.raw, protocols));
    },
  },
  {
    method: 'GET', path: new RegExp(`${PROVIDER}/${SEG}/(.+)$`), action: 'read',
    async handle({ req, reply, svc, ctx, params: [ns, type, version, rest] }) {
      const served = await providerFile(svc, ctx.repo, providerAddr(ns, type), version, rest);
      return sendServed(req, reply, served, svc, rest.endsWith('.zip') ? { contentType: ZIP_TYPE } : {});
    },
  },
  {
    method: 'GET', path: new RegExp(`${MODULE}/versions$`), action: 'read',
    async handle({ req, reply, svc, ctx, params: [ns, name, system] }) {
      const m = moduleAddr(ns, name, system);
      const served = await resolveDoc(svc, ctx.repo, moduleVersionsSource(svc, m));
      return sendDocument(req, reply, served, json(renderModuleVersions(m, served.doc)), JSON_TYPE);
    },
  },
  {
    method: 'GET', path: new RegExp(`${MODULE}/${SEG}/download$`), action: 'read',
    async handle({ reply, svc, ctx, params: [ns, name, system, version] }) {
      const loc = await moduleLocation(svc, ctx.repo, moduleAddr(ns, name, system), version, ctx.repoUrl);
      docHeaders(reply, { source: loc.source, servedBy: loc.servedBy });
      return reply.code(204).header('x-terraform-get', loc.location).send();
    },
  },
  {
    method: ['GET', 'PUT'], path: new RegExp(`${MODULE}/${SEG}\\.(tar\\.gz|zip)$`), action: (c) => (c.req.method === 'PUT' ? 'write' : 'read'),
    async handle({ req, reply, svc, ctx, params: [ns, name, system, version, ext] }) {
      if (req.method === 'PUT') {
        const target = await writeTarget(svc, ctx.repo);
        return reply.code(201).send(await saveModule(svc, target, moduleAddr(ns, name, system, 'BAD_REQUEST'), version, ext as ArchiveExt, req.raw));
      }
      return sendServed(req, reply, await moduleArchive(svc, ctx.repo, moduleAddr(ns, name, system), version, ext as ArchiveExt), svc);
    },
  },
  {
    method: 'GET', path: new RegExp(`^${SEG}/${SEG}/${SEG}/index\\.json$`), action: 'read',
    async handle({ req, reply, svc, ctx, params: [host, ns, type] }) {
      const { origin, body } = await mirrorIndex(svc, ctx.repo, host, providerAddr(ns, type));
      return sendDocument(req, reply, origin, json(body), JSON_TYPE);
    },
  },
  {
    method: 'GET', path: new RegExp(`^${SEG}/${SEG}/${SEG}/${SEG}\\.json$`), action: 'read',
    async handle({ req, reply, svc, ctx, params: [host, ns, type, version] }) {
      const { origin, body } = await mirrorVersion(svc, ctx.repo, host, providerAddr(ns, type), version, ctx.repoUrl);
      return sendDocument(req, reply, origin, json(body), JSON_TYPE);
    },
  },
];

export const terraform: FormatHandler = {
  name: 'terraform',
  options: TERRAFORM_OPTIONS,
  config: TERRAFORM_CONFIG,
  routes,
  entry: discoveryEntry,
};
