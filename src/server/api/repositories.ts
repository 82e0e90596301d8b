import type { FastifyInstance } from 'fastify';
import { ConfigError, parseRepoEntry } from '../../config/load.js';
import { AppError } from '../../lib/errors.js';
import { publicRepo } from '../../repos/registry.js';
import type { Services } from '../../repos/services.js';

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

/** The management API: what `artifactapi repo …` calls. */
export async function repositoriesApi(app: FastifyInstance, svc: Services): Promise<void> {
  app.get('/api/v1/repositories', async () => (await svc.repos.list()).map(publicRepo));

  app.post('/api/v1/repositories', async (req, reply) => {
    const def = await svc.repos.put(entryFrom(req.body), { create: true });
    return reply.code(201).header('location', `/api/v1/repositories/${def.name}`).send(publicRepo(def));
  });

  app.get<{ Params: { name: string } }>('/api/v1/repositories/:name', async (req) => publicRepo(await svc.repos.require(req.params.name)));

  app.put<{ Params: { name: string } }>('/api/v1/repositories/:name', async (req) => {
    const existing = await svc.repos.get(req.params.name);
    const input = entryFrom(req.body, req.params.name);
    // Keep stored credentials when an update does not mention them.
    if (existing && input.options.password === undefined && existing.options.password !== undefined && input.options.username === undefined) {
      input.options.username = existing.options.username;
      input.options.password = existing.options.password;
    }
    return publicRepo(await svc.repos.put(input));
  });

  app.delete<{ Params: { name: string } }>('/api/v1/repositories/:name', async (req, reply) => {
    await svc.repos.remove(req.params.name);
    return reply.code(204).send();
  });
}
