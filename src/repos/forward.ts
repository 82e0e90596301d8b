import { AppError } from '../lib/errors.js';
import type { RepoDef } from '../storage/meta/types.js';
import type { RawReply } from '../upstream/client.js';
import type { Services } from './services.js';
import { firstMember } from './virtual.js';

/** A request forwarded as it is: a path (and query) under the upstream root. */
export interface Forward {
  method: 'GET' | 'POST';
  path: string;
  body?: Buffer;
  headers: Record<string, string>;
}

/**
 * Questions only an upstream can answer (npm audit, npm search), never cached:
 * a remote repo forwards them to its upstream and hands back whatever status
 * and body it gives; a virtual repo asks its members in order (an upstream 404
 * moves on); a local repo has no upstream to ask.
 */
export async function forward(svc: Services, repo: RepoDef, f: Forward, depth = 0): Promise<RawReply & { servedBy: string }> {
  switch (repo.kind) {
    case 'local':
      throw new AppError('NOT_FOUND', `${repo.name} has no upstream to ask`);
    case 'virtual':
      return firstMember(svc, repo, depth + 1, (m) => forward(svc, m, f, depth + 1));
    case 'remote': {
      const settings = svc.repos.upstreamSettings(repo);
      const url = new URL(f.path, settings.upstream.replace(/\/*$/, '/')).toString();
      const r = await svc.upstream.fetchRaw(settings, url, { method: f.method, body: f.body, headers: f.headers });
      if (r.status === 404) {
        r.body.resume();
        throw new AppError('NOT_FOUND', `${f.path.split('?')[0]} not found upstream of ${repo.name}`);
      }
      return { ...r, servedBy: repo.name };
    }
  }
}
