import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { networkInterfaces } from 'node:os';
import { ConfigError, parseRepoEntry } from '../../config/load.js';
import { AppError } from '../../lib/errors.js';
import { MASK } from '../../lib/secrets.js';
import type { Services } from '../../repos/services.js';
import type { RepoDef } from '../../storage/meta/types.js';
import { runWithHooks, visibleRepos, type Action, type Operation } from '../pipeline.js';

function entryFrom(body: unknown, name?: string) {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new AppError('BAD_REQUEST', 'expected a JSON object');
  const entry = { ...(body as Record<string, unknown>) };
  if (name !== undefined) {
    if (entry.name !== undefined && entry.name !== name) throw new AppError('BAD_REQUEST', 'name in body differs from the URL');
    entry.name = name;
  }
  try {
    return parseRepoEntry(entry, 'repository');
  } catch (err) {
    if (err instanceof ConfigError) throw new AppError('BAD_REQUEST', err.message);
    throw err;
  }
}

const portOf = (u: URL) => u.port || (u.protocol === 'https:' ? '443' : '80');
const bare = (host: string) => host.replace(/^\[|\]$/g, '').toLowerCase();

/**
 * Whether an upstream URL points back at this server: the address the API
 * request itself reached, public_url, or any local address on the port we
 * listen on. Names that only DNS maps here are caught at run time (hops.ts).
 */
function selfCheck(req: FastifyRequest, svc: Services, app: FastifyInstance): (u: URL) => boolean {
  const self = new Set<string>();
  const add = (host: string, port: string) => self.add(`${bare(host)}|${port}`);
  for (const base of [`${req.protocol}://${req.host}`, svc.config.public_url]) {
    try {
      const u = new URL(base);
      add(u.hostname, portOf(u));
    } catch {
      // no usable base
    }
  }
  const addr = app.server.address();
  if (addr && typeof addr === 'object') {
    const port = String(addr.port);
    const any = addr.address === '0.0.0.0' || addr.address === '::';
    const locals = Object.values(networkInterfaces()).flat().map((i) => i!.address);
    for (const a of any ? locals : [addr.address]) add(a, port);
    if (any || addr.address.startsWith('127.') || addr.address === '::1') for (const h of ['localhost', '127.0.0.1', '::1']) add(h, port);
  }
  return (u) => self.has(`${bare(u.hostname)}|${portOf(u)}`);
}

function sameOrigin(a: string | undefined, b: string | undefined): boolean {
  try {
    return new URL(a!).origin === new URL(b!).origin;
  } catch {
    return false;
  }
}

/** The management API's Operation: no format, the repo when the URL names an existing one. */
function apiOp(action: Action, repo?: RepoDef | null, subject?: string): Operation {
  return { format: 'api', action, repo: repo ?? undefined, touches: repo ? [{ repo, action }] : [], subject: subject ?? repo?.name };
}

/**
 * The management API: what `artifactapi repo …` calls. Every route goes through the pipeline's
 * hooks: list and show read each repo (the list keeps only what the caller may see), create,
 * update and delete are `admin`.
 */
export async function repositoriesApi(app: FastifyInstance, svc: Services): Promise<void> {
  const publicRepo = (def: RepoDef) => svc.repos.publicRepo(def);
  const run = (req: FastifyRequest, reply: FastifyReply, op: Operation, handle: () => Promise<unknown>) => runWithHooks(op, { req, reply, svc }, handle);

  app.get('/api/v1/repositories', async (req, reply) => {
    const op = apiOp('read');
    return run(req, reply, op, async () => (await visibleRepos(svc, op)).map(publicRepo));
  });

  app.post('/api/v1/repositories', async (req, reply) => {
    const name = (req.body as { name?: unknown } | undefined)?.name;
    return run(req, reply, apiOp('admin', null, typeof name === 'string' ? name : undefined), async () => {
      const def = await svc.repos.put(entryFrom(req.body), { create: true, isSelf: selfCheck(req, svc, app) });
      return reply.code(201).header('location', `/api/v1/repositories/${def.name}`).send(publicRepo(def));
    });
  });

  app.get<{ Params: { name: string } }>('/api/v1/repositories/:name', async (req, reply) => {
    const repo = await svc.repos.require(req.params.name);
    return run(req, reply, apiOp('read', repo), async () => publicRepo(repo));
  });

  app.put<{ Params: { name: string } }>('/api/v1/repositories/:name', async (req, reply) => {
    const existing = await svc.repos.get(req.params.name);
    return run(req, reply, apiOp('admin', existing, req.params.name), async () => {
      const input = entryFrom(req.body, req.params.name);
      // Keep stored credentials when an update does not mention them, unless it points the repo at
      // another origin: they belong to the old upstream.
      if (existing && input.options.password === undefined && existing.options.password !== undefined && input.options.username === undefined
        && sameOrigin(existing.upstream, input.upstream)) {
        input.options.username = existing.options.username;
        input.options.password = existing.options.password;
      }
      // A secret sent back as shown (masked) keeps its stored value: GET, change a key, PUT works.
      for (const k of svc.repos.schema.secretKeys(input.format)) {
        if (input.options[k] !== MASK) continue;
        // The password belongs to its upstream: not carried to another origin.
        if (existing?.options[k] === undefined || (k === 'password' && !sameOrigin(existing.upstream, input.upstream))) {
          throw new AppError('BAD_REQUEST', `repository: ${k} is the masked value "${MASK}"; give the secret itself (or ${k}_file / ${k}_env)`);
        }
        input.options[k] = existing.options[k];
      }
      return publicRepo(await svc.repos.put(input, { isSelf: selfCheck(req, svc, app) }));
    });
  });

  app.delete<{ Params: { name: string } }>('/api/v1/repositories/:name', async (req, reply) => {
    const existing = await svc.repos.get(req.params.name);
    return run(req, reply, apiOp('admin', existing, req.params.name), async () => {
      await svc.repos.remove(req.params.name);
      return reply.code(204).send();
    });
  });
}
