import { AppError } from '../../lib/errors.js';
import { resolveDoc, type DocSource } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import type { Entry } from '../../server/pipeline.js';
import { sendDocument } from '../../server/send.js';
import type { RepoDef } from '../../storage/meta/types.js';
import { formatConfig } from '../../config/schema.js';
import { JSON_TYPE, upstreamJson } from './names.js';
import { TERRAFORM_CONFIG } from './options.js';

export const DISCOVERY_PATH = '.well-known/terraform.json';

interface Discovery {
  'providers.v1'?: string;
  'modules.v1'?: string;
}

/** A remote repo's upstream service discovery document, cached with the metadata TTL. */
const discoverySource: DocSource<Discovery> = {
  ref: { path: DISCOVERY_PATH, mutable: true, contentType: JSON_TYPE, locate: (repo) => new URL(`/${DISCOVERY_PATH}`, repo.upstream).toString() },
  local: async () => null,
  parseUpstream(repo, body) {
    const doc = upstreamJson(body, `${repo.name}: upstream ${DISCOVERY_PATH}`);
    if (!doc || typeof doc !== 'object') throw new AppError('UPSTREAM_FAILED', `${repo.name}: upstream ${DISCOVERY_PATH} is not an object`);
    return doc as Discovery;
  },
  merge: () => {
    throw new AppError('INTERNAL', 'discovery documents are not merged');
  },
};

/**
 * Where a remote repo's upstream serves a service (`providers.v1`, `modules.v1`), as an absolute
 * URL ending in `/`: read from the upstream's `/.well-known/terraform.json`, resolved against it.
 */
export async function serviceBase(svc: Services, repo: RepoDef, service: 'providers.v1' | 'modules.v1'): Promise<string> {
  const { doc } = await resolveDoc(svc, repo, discoverySource);
  const value = doc[service];
  if (typeof value !== 'string' || !value) throw new AppError('NOT_FOUND', `the upstream of ${repo.name} offers no ${service} service`);
  let url: URL;
  try {
    url = new URL(value, new URL(`/${DISCOVERY_PATH}`, repo.upstream));
  } catch {
    throw new AppError('UPSTREAM_FAILED', `${repo.name}: upstream ${service} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new AppError('UPSTREAM_FAILED', `${repo.name}: upstream ${service} is not an http(s) URL`);
  return url.toString().replace(/\/*$/, '/');
}

/**
 * `GET /.well-known/terraform.json` at the host root: the services of the repo named by
 * `terraform.default_repo`, so `terraform init` can use this host as a registry. A format entry,
 * so it passes the same hooks (auth, audit, metrics) as every other read of that repo.
 */
export const discoveryEntry: Entry = {
  prefix: '/.well-known',
  routes: [{
    method: 'GET', path: /^terraform\.json$/, action: 'read', subject: () => DISCOVERY_PATH,
    handle: async ({ req, reply, svc, ctx }) => {
      const base = svc.config.public_url ? new URL(svc.config.public_url).pathname.replace(/\/+$/, '') : '';
      return sendDocument(req, reply, { source: 'local', servedBy: ctx.repo.name },
        JSON.stringify({ 'providers.v1': `${base}/${ctx.repo.name}/v1/providers/`, 'modules.v1': `${base}/${ctx.repo.name}/v1/modules/` }), JSON_TYPE);
    },
  }],
  async locate({ svc }) {
    const name = formatConfig(svc.config, 'terraform', TERRAFORM_CONFIG).default_repo;
    const repo = name ? await svc.repos.get(name) : null;
    if (!repo || repo.format !== 'terraform') throw new AppError('NOT_FOUND', 'no terraform registry on this host (terraform.default_repo is not set)');
    return repo;
  },
};
