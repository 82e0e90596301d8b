import type { Services } from '../../repos/services.js';
import type { RepoDef } from '../../storage/meta/types.js';
import { parseJson } from '../../lib/decode.js';
import { AppError } from '../../lib/errors.js';
import { collect } from '../../lib/streams.js';
import { sha256 } from '../../lib/digest.js';
import type { UpstreamSettings } from '../../upstream/client.js';

/**
 * The upstream registry's auth: distribution's `WWW-Authenticate: Bearer
 * realm=…,service=…` challenge, learned once per upstream origin from `GET /v2/`,
 * then a pull token per image from the realm (anonymous, or with the repo's
 * configured credentials as Basic), cached until shortly before it expires.
 * A token is only ever reused for the same repo, upstream origin, realm,
 * service, scope and credentials: one issued for an old upstream is never
 * sent to a new one. Both caches are bounded.
 */
interface Challenge { scheme: 'bearer'; realm: string; service?: string }

export const MAX_TOKENS = 1024;
/** The caches, owned by the server (svc.caches): challenges by upstream, tokens, and identities. */
export const CACHES = {
  challenges: { name: 'docker.upstream-challenges', maxBytes: 1024 * 1024, maxEntries: 256 },
  tokens: { name: 'docker.upstream-tokens', maxBytes: 8 * 1024 * 1024, maxEntries: MAX_TOKENS },
  identities: { name: 'docker.upstream-identities', maxBytes: 1024 * 1024, maxEntries: 4096 },
};
const cache = <V>(svc: Services, c: (typeof CACHES)[keyof typeof CACHES]) => svc.caches.lru<V>(c.name, c.maxBytes, c.maxEntries);
const challenges = (svc: Services) => cache<{ c: Challenge | null; at: number }>(svc, CACHES.challenges);
const tokens = (svc: Services) => cache<{ token: string; until: number }>(svc, CACHES.tokens);
/**
 * Each repo's upstream origin + credentials when its tokens were cached: a change drops them. An
 * evicted entry reads as a change, which only drops tokens that may still have been good.
 */
const identities = (svc: Services) => cache<string>(svc, CACHES.identities);
const CHALLENGE_MS = 10 * 60_000;

/** How many upstream tokens this server caches (for tests of the bound). */
export function cachedTokenCount(svc: Services): number {
  return tokens(svc).size;
}

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

async function challengeOf(svc: Services, settings: UpstreamSettings): Promise<Challenge | null> {
  const url = new URL('v2/', settings.upstream).toString();
  const hit = challenges(svc).get(url);
  if (hit && Date.now() - hit.at < CHALLENGE_MS) return hit.c;
  const r = await svc.upstream.fetchRaw(settings, url);
  r.body.resume();
  const c = r.status === 401 ? parseChallenge(r.headers['www-authenticate']) : null;
  challenges(svc).set(url, { c, at: Date.now() }, url.length + (c ? c.realm.length + (c.service?.length ?? 0) : 0) + 64);
  return c;
}

/** Request headers for the upstream: a bearer token for pulling `image`, or nothing (open or Basic-only upstreams). */
export async function upstreamAuth(svc: Services, repo: RepoDef, image: string): Promise<Record<string, string>> {
  const settings = svc.repos.upstreamSettings(repo);
  const c = await challengeOf(svc, settings);
  if (!c) return {};
  const scope = `repository:${upstreamImage(repo, image)}:pull`;
  const identity = `${new URL(settings.upstream).origin}\0${sha256(settings.authorization ?? '')}`;
  if (identities(svc).get(repo.name) !== identity) {
    tokens(svc).deletePrefix(`${repo.name}\0`);
    identities(svc).set(repo.name, identity, repo.name.length + identity.length);
  }
  const key = `${repo.name}\0${identity}\0${c.realm}\0${c.service ?? ''}\0${scope}`;
  const hit = tokens(svc).get(key);
  if (hit && hit.until > Date.now()) return { authorization: `Bearer ${hit.token}` };
  const url = new URL(c.realm);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new AppError('UPSTREAM_FAILED', 'upstream token realm is not an http(s) URL');
  if (settings.authorization && url.protocol === 'http:' && new URL(settings.upstream).protocol === 'https:') {
    throw new AppError('UPSTREAM_FAILED', 'upstream names a plain-http token realm; refusing to send the configured credentials over it');
  }
  if (c.service) url.searchParams.set('service', c.service);
  url.searchParams.set('scope', scope);
  // Configured credentials go to the realm the upstream itself named (as docker does); anonymous otherwise.
  const r = await svc.upstream.fetchRaw(settings, url.toString(), { authorization: settings.authorization });
  const raw = await collect(r.body, { max: svc.config.limits.metadata_body, tooLarge: () => new AppError('UPSTREAM_FAILED', 'upstream token answer is too large') });
  if (r.status !== 200) throw new AppError('UPSTREAM_FAILED', `upstream token server answered ${r.status}`);
  const body = (parseJson(raw, 'UPSTREAM_FAILED', 'upstream token server answered no JSON') ?? {}) as { token?: string; access_token?: string; expires_in?: number };
  const token = body.token ?? body.access_token;
  if (!token) throw new AppError('UPSTREAM_FAILED', 'upstream token server gave no token');
  const ttl = Math.max(10, Number(body.expires_in) || 60);
  tokens(svc).set(key, { token, until: Date.now() + (ttl - 5) * 1000 }, key.length + token.length);
  return { authorization: `Bearer ${token}` };
}
