import { ANONYMOUS } from '../../auth/auth.js';
import { decodePath } from '../../lib/decode.js';
import { isDigest } from '../../lib/digest.js';
import { AppError } from '../../lib/errors.js';
import { writeTarget } from '../../repos/local.js';
import { visibleRepos, type Action, type Call, type Entry, type Operation, type Route } from '../../server/pipeline.js';
import type { ChallengeDetail } from '../types.js';
import type { RepoDef } from '../../storage/meta/types.js';
import { deleteBlob, getBlob } from './blobs.js';
import { catalog, listTags, referrers } from './listings.js';
import { deleteManifest, getManifest, putManifest } from './manifests.js';
import { resolveName, type Target } from './names.js';
import { cancelUpload, finishUpload, patchUpload, startUpload, uploadStatus } from './uploads.js';

/** The repo and image the matched route names: `REPO/IMAGE`, or an image of docker.default_repo (names.ts). */
function target(c: Call): Target {
  const name = c.params[0];
  const repo = c.ctx.repo;
  const slash = name.indexOf('/');
  const image = slash > 0 && name.slice(0, slash) === repo.name ? name.slice(slash + 1) : name;
  return { name, repo, image, ns: c.query.get('ns') ?? undefined };
}

const NAME = '(.+)';

/** distribution's endpoints under /v2/, matched against the percent-decoded path (uploads before blobs). */
const routes: Route[] = [
  {
    method: 'GET', path: /^$/, repo: false, action: 'read', login: true,
    handle: async ({ req, reply }) => reply.header('content-type', 'application/json').send(req.method === 'HEAD' ? undefined : {}),
  },
  { method: 'GET', path: /^token$/, repo: false, action: 'read', handle: issueToken },
  {
    method: 'GET', path: /^_catalog$/, repo: false, action: 'read',
    handle: async (c) => catalog(c.req, c.reply, c.svc, await visibleRepos(c.svc, c.op)),
  },
  {
    method: 'POST', path: new RegExp(`^${NAME}/blobs/uploads/?$`), action: 'write',
    // A cross-repo mount reads the source image's repo.
    async touches(c) {
      const from = c.query.get('from');
      const mount = c.query.get('mount');
      if (!from || !mount || !isDigest(mount)) return [];
      try {
        return [{ repo: (await resolveName(c.svc, from)).repo, action: 'read' }];
      } catch {
        return [];
      }
    },
    handle: async (c) => startUpload(c.req, c.reply, c.svc, target(c), await writeTarget(c.svc, c.ctx.repo)),
  },
  {
    method: 'PATCH', path: new RegExp(`^${NAME}/blobs/uploads/([^/]+)$`), action: 'write',
    handle: async (c) => patchUpload(c.req, c.reply, c.svc, target(c), await writeTarget(c.svc, c.ctx.repo), c.params[1]),
  },
  {
    method: 'PUT', path: new RegExp(`^${NAME}/blobs/uploads/([^/]+)$`), action: 'write',
    handle: async (c) => finishUpload(c.req, c.reply, c.svc, target(c), await writeTarget(c.svc, c.ctx.repo), c.params[1]),
  },
  {
    // Status and cancel of an upload session are part of a push.
    method: 'GET', path: new RegExp(`^${NAME}/blobs/uploads/([^/]+)$`), action: 'write',
    handle: async (c) => uploadStatus(c.reply, c.svc, target(c), await writeTarget(c.svc, c.ctx.repo), c.params[1]),
  },
  {
    method: 'DELETE', path: new RegExp(`^${NAME}/blobs/uploads/([^/]+)$`), action: 'write',
    handle: async (c) => cancelUpload(c.reply, c.svc, target(c), await writeTarget(c.svc, c.ctx.repo), c.params[1]),
  },
  {
    method: 'GET', path: new RegExp(`^${NAME}/blobs/([^/]+)$`), action: 'read',
    handle: async (c) => getBlob(c.req, c.reply, c.svc, target(c), c.params[1]),
  },
  {
    method: 'DELETE', path: new RegExp(`^${NAME}/blobs/([^/]+)$`), action: 'delete',
    handle: async (c) => deleteBlob(c.reply, c.svc, await writeTarget(c.svc, c.ctx.repo), target(c).image, c.params[1]),
  },
  {
    method: 'GET', path: new RegExp(`^${NAME}/manifests/([^/]+)$`), action: 'read',
    handle: async (c) => getManifest(c.req, c.reply, c.svc, target(c), c.params[1]),
  },
  {
    method: 'PUT', path: new RegExp(`^${NAME}/manifests/([^/]+)$`), action: 'write',
    handle: async (c) => putManifest(c.req, c.reply, c.svc, target(c), await writeTarget(c.svc, c.ctx.repo), c.params[1]),
  },
  {
    method: 'DELETE', path: new RegExp(`^${NAME}/manifests/([^/]+)$`), action: 'delete',
    handle: async (c) => deleteManifest(c.reply, c.svc, target(c), await writeTarget(c.svc, c.ctx.repo), c.params[1]),
  },
  {
    method: 'GET', path: new RegExp(`^${NAME}/tags/list$`), action: 'read',
    handle: async (c) => listTags(c.req, c.reply, c.svc, target(c)),
  },
  {
    method: 'GET', path: new RegExp(`^${NAME}/referrers/([^/]+)$`), action: 'read',
    handle: async (c) => referrers(c.req, c.reply, c.svc, target(c), c.params[1]),
  },
];

/** The registry API under /v2/: the repo is the name's first segment, else docker.default_repo (names.ts resolveName). */
export const dockerEntry: Entry = {
  prefix: '/v2',
  routes,
  headers: { 'docker-distribution-api-version': 'registry/2.0' },
  locate: async (c) => (await resolveName(c.svc, c.params[0], c.query.get('ns') ?? undefined)).repo,
};

/**
 * GET /v2/token: the token endpoint the challenge's realm names. The identity came with Basic
 * credentials (or none: anonymous); `svc.auth` grants each requested scope only what it may do.
 */
async function issueToken({ req, reply, svc, query }: Call): Promise<unknown> {
  const id = req.identity ?? ANONYMOUS;
  if (id.docker) throw new AppError('UNAUTHORIZED', 'a Bearer token cannot buy another; send Basic credentials');
  const scopes = query.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
  const repoOf = (name: string) => resolveName(svc, name).then((t) => t.repo, () => null);
  reply.header('cache-control', 'no-store');
  return reply.send(await svc.auth.dockerToken(id, query.get('service') ?? undefined, scopes, repoOf));
}

/** The whole path after /v2/ percent-decoded (names never carry an encoded `/`); malformed is NAME_INVALID. */
export function decodeV2Path(rest: string): string {
  return decodePath(rest, 'NAME_INVALID', 'malformed path');
}

/** The image name an Operation's subject (the path after /v2/) names, if any. */
export function imageOf(subject: string | undefined): string | undefined {
  return /^(.+?)\/(?:manifests|blobs|tags|referrers)(?:\/|$)/.exec(subject ?? '')?.[1];
}

const SCOPE_ACTIONS: Record<Action, string> = { read: 'pull', write: 'pull,push', delete: 'delete', admin: '*' };

/**
 * The token challenge distribution clients expect: `scope` names the image as the client wrote it
 * (the subject is the path after /v2/) with the refused action (`pull` for reads, `pull,push` for
 * pushes), or the catalog; the realm is our own `/v2/token`.
 */
export function dockerChallenge(op: Operation, baseUrl: string, o: ChallengeDetail = {}): string {
  const parts = [`realm="${baseUrl}/v2/token"`, 'service="artifactapi"'];
  const repo = o.touch?.repo;
  const image = repo && repo !== op.repo ? repo.name : imageOf(op.subject) ?? repo?.name;
  if (image) parts.push(`scope="repository:${image}:${SCOPE_ACTIONS[o.touch?.action ?? op.action]}"`);
  else if (op.subject === '_catalog') parts.push('scope="registry:catalog:*"');
  if (o.error) parts.push(`error="${o.error}"`);
  return `Bearer ${parts.join(',')}`;
}

/** A repo the caller may not read answers as distribution answers an unknown name. */
export function dockerNotFound(op: Operation, repo: RepoDef): AppError {
  return new AppError('NAME_UNKNOWN', `repository name not known to registry: ${imageOf(op.subject) ?? repo.name}`);
}
