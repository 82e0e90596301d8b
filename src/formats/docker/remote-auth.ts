import type { Services } from '../../repos/services.js';
import type { RepoDef } from '../../storage/meta/types.js';
import { AppError } from '../../lib/errors.js';
import { collect } from '../../lib/streams.js';

/**
 * The upstream registry's auth: distribution's `WWW-Authenticate: Bearer
 * realm=…,service=…` challenge, learned once per remote repo from `GET /v2/`,
 * then a pull token per image from the realm (anonymous, or with the repo's
 * configured credentials as Basic), cached until shortly before it expires.
 */
interface Challenge { scheme: 'bearer'; realm: string; service?: string }

const challenges = new Map<string, { c: Challenge | null; at: number }>();
const tokens = new Map<string, { token: string; until: number }>();
const CHALLENGE_MS = 10 * 60_000;

export function parseChallenge(header: string | undefined): Challenge | null {
  if (!header || !/^\s*bearer\s/i.test(header)) return null;
  const params: Record<string, string> = {};
  for (const m of header.replace(/^\s*bearer\s+/i, '').matchAll(/([a-zA-Z_]+)="([^"]*)"/g)) params[m[1].toLowerCase()] = m[2];
  if (!params.realm) return null;
  return { scheme: 'bearer', realm: params.realm, service: params.service };
}

/** The name of an image at the upstream: Docker Hub keeps official images under `library/`. */
export function upstreamImage(repo: RepoDef, image: string): string {
  const host = new URL(repo.upstream!).hostname;
  const hub = host === 'registry-1.docker.io' || host === 'docker.io' || host === 'index.docker.io' || repo.options.docker_hub === true;
  return hub && !image.includes('/') ? `library/${image}` : image;
}

export function upstreamUrl(svc: Services, repo: RepoDef, image: string, kind: 'manifests' | 'blobs', ref: string): string {
  const base = svc.repos.upstreamSettings(repo).upstream;
  return new URL(`v2/${upstreamImage(repo, image)}/${kind}/${ref}`, base).toString();
}

async function challengeOf(svc: Services, repo: RepoDef): Promise<Challenge | null> {
  const hit = challenges.get(repo.name);
  if (hit && Date.now() - hit.at < CHALLENGE_MS) return hit.c;
  const settings = svc.repos.upstreamSettings(repo);
  const r = await svc.upstream.fetchRaw(settings, new URL('v2/', settings.upstream).toString());
  r.body.resume();
  const c = r.status === 401 ? parseChallenge(r.headers['www-authenticate']) : null;
  challenges.set(repo.name, { c, at: Date.now() });
  return c;
}

/** Request headers for the upstream: a bearer token for pulling `image`, or nothing (open or Basic-only upstreams). */
export async function upstreamAuth(svc: Services, repo: RepoDef, image: string): Promise<Record<string, string>> {
  const c = await challengeOf(svc, repo);
  if (!c) return {};
  const scope = `repository:${upstreamImage(repo, image)}:pull`;
  const key = `${repo.name}\0${scope}`;
  const hit = tokens.get(key);
  if (hit && hit.until > Date.now()) return { authorization: `Bearer ${hit.token}` };
  const settings = svc.repos.upstreamSettings(repo);
  const url = new URL(c.realm);
  if (c.service) url.searchParams.set('service', c.service);
  url.searchParams.set('scope', scope);
  // Configured credentials go to the realm the upstream itself named (as docker does); anonymous otherwise.
  const r = await svc.upstream.fetchRaw(settings, url.toString(), { authorization: settings.authorization });
  const raw = await collect(r.body, { max: svc.config.limits.metadata_body, tooLarge: () => new AppError('UPSTREAM_FAILED', 'upstream token answer is too large') });
  if (r.status !== 200) throw new AppError('UPSTREAM_FAILED', `upstream token server answered ${r.status}`);
  let body: { token?: string; access_token?: string; expires_in?: number };
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new AppError('UPSTREAM_FAILED', 'upstream token server answered no JSON');
  }
  const token = body.token ?? body.access_token;
  if (!token) throw new AppError('UPSTREAM_FAILED', 'upstream token server gave no token');
  const ttl = Math.max(10, Number(body.expires_in) || 60);
  tokens.set(key, { token, until: Date.now() + (ttl - 5) * 1000 });
  return { authorization: `Bearer ${token}` };
}
