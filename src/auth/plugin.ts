import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { decodePath, parseJson, tryDecode } from '../lib/decode.js';
import { AppError } from '../lib/errors.js';
import { collectRequest } from '../lib/streams.js';
import { formatHandler } from '../formats/index.js';
import type { Services } from '../repos/services.js';
import type { ChallengeDetail } from '../formats/types.js';
import { challengeOf, dispatchRepoRequest, entryOf } from '../server/dispatch.js';
import { defaultErrorBody, errorHandler } from '../server/errors.js';
import { runWithHooks, type Action, type Operation } from '../server/pipeline.js';
import type { GrantRec, TokenRec } from '../storage/meta/identities.js';
import type { RepoDef } from '../storage/meta/types.js';
import { ANONYMOUS, LEVEL, type Auth, type Identity } from './auth.js';
import { sha256hex, TOKEN_PREFIX } from './secrets.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who sent the request (auth's onRequest hook); anonymous when no credentials came. */
    identity?: Identity;
    /** Whether credentials came with it (anonymous by choice vs. by lack of them). */
    credentialed?: boolean;
  }
}

/** The 401 challenge header of the protocol the request speaks. */
const challenge = (req: FastifyRequest, svc: Services, o?: ChallengeDetail) => ({ 'www-authenticate': challengeOf(req, svc, o) });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the before-hook learnt about a request, for the (synchronous) listing filter. */
const grantsOf = new WeakMap<Operation, { id: Identity; grants: GrantRec[] }>();

/**
 * Attaches auth to the core: one onRequest hook (who is asking; bad credentials are 401 for every
 * path, so they reveal nothing about which repos exist), the pipeline's before-hook (may this
 * identity do `op.action` on every repo in `op.touches`), the listing filter, and the login
 * endpoints of npm's CouchDB login, whoami and logout (docker's `/v2/token` is a docker route that asks
 * `svc.auth` for the token). Formats know nothing of permissions.
 */
export async function installAuth(app: FastifyInstance, svc: Services, auth: Auth): Promise<void> {
  app.addHook('onRequest', async (req) => {
    const header = req.headers.authorization;
    if (!header) {
      req.identity = ANONYMOUS;
      return;
    }
    req.credentialed = true;
    const addr = req.ip; // the audit trail's client address: X-Forwarded-For only from server.trust_proxy's proxies
    const wait = auth.throttle.retryAfter(addr);
    if (wait > 0) throw new AppError('TOOMANYREQUESTS', 'too many failed logins from this address; try again later', undefined, { 'retry-after': String(wait) });
    const id = await auth.fromHeader(header);
    if (id) {
      req.identity = id;
      return;
    }
    await sleep(auth.throttle.failed(addr));
    await answerInRepoShape(req, svc, auth);
    throw new AppError('UNAUTHORIZED', 'bad credentials', undefined, challenge(req, svc, { error: 'invalid_token' }));
  });

  svc.pipeline.before.push(async (op, req) => {
    const id = req.identity ?? ANONYMOUS;
    if (id.user) op.identity = { user: id.user, ...(id.tokenId ? { tokenId: id.tokenId } : {}) };
    const grants = await auth.grantsFor(id);
    grantsOf.set(op, { id, grants });
    // Where clients learn whether to log in (docker's `/v2/` ping): unless anonymous may write anyway, a
    // caller without credentials gets the challenge there, and anonymous pulls then take the token dance.
    if (op.login && !id.user && !['write', 'admin'].includes(svc.config.auth.anonymous)) {
      throw new AppError('UNAUTHORIZED', 'authentication required', undefined, challenge(req, svc));
    }
    if (op.action === 'admin' && op.touches.length === 0) {
      if (auth.isAdmin(id)) return;
      if (!id.user) throw new AppError('UNAUTHORIZED', 'authentication required', undefined, challenge(req, svc));
      throw new AppError('DENIED', 'this needs an admin');
    }
    for (const [i, t] of op.touches.entries()) {
      const level = auth.levelWith(id, t.repo, grants);
      if (level >= LEVEL[t.action]) continue;
      if (level < LEVEL.read && i === 0) hide(req, op, t.repo);
      // Docker: a Bearer token that lacks the scope while its user would have it: ask for a wider token.
      const could = id.docker ? auth.levelWith({ ...id, docker: undefined }, t.repo, grants) : level;
      if (!id.user || (id.docker && could >= LEVEL[t.action])) {
        throw new AppError('UNAUTHORIZED', 'authentication required', undefined, challenge(req, svc, { touch: t, ...(id.docker ? { error: 'insufficient_scope' } : {}) }));
      }
      throw new AppError('DENIED', `${id.user} may not ${t.action} in ${t.repo.name}`);
    }
  });

  svc.pipeline.visible.push((op, repo) => {
    const known = grantsOf.get(op);
    if (!known) return false;
    return auth.levelWith(known.id, repo, known.grants) >= LEVEL.read;
  });

  await app.register(async (scope) => npmLoginRoutes(scope, svc, auth));
}

/** A repo the caller may not read answers as a missing repo would: same status, code, message and body shape. */
function hide(req: FastifyRequest, op: Operation, repo: RepoDef): never {
  req.artifact = undefined;
  const notFound = formatHandler(op.format)?.notFound;
  throw notFound ? notFound(op, repo) : new AppError('REPO_NOT_FOUND', `no repository named "${repo.name}"`);
}

/** A 401 under a public repo speaks its format's error shape (npm's `{"error"}`); elsewhere the default, as for a missing repo. */
async function answerInRepoShape(req: FastifyRequest, svc: Services, auth: Auth): Promise<void> {
  const path = (req.raw.url ?? '/').split('?')[0];
  const first = path.split('/')[1];
  if (!first || entryOf(path)) return;
  const name = tryDecode(first);
  if (name === undefined) return;
  const repo = await svc.repos.get(name).catch(() => null);
  if (repo && auth.anonymousLevel(repo) >= LEVEL.read) req.artifact = { repo: repo.name, format: repo.format };
}

// ---- npm: login (legacy CouchDB user PUT), whoami, logout -----------------------------------------

async function npmLoginRoutes(app: FastifyInstance, svc: Services, auth: Auth): Promise<void> {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));
  app.setErrorHandler((err, req, reply) => {
    const handler = req.artifact?.format ? formatHandler(req.artifact.format) : undefined;
    return errorHandler(handler?.errorBody?.bind(handler) ?? defaultErrorBody)(err as Error, req, reply);
  });

  /**
   * Whether this is an npm account request: yes under an npm repo, a missing one, or one the caller
   * may not read (so a private repo answers as a missing one); no under a readable repo of another
   * format, whose own paths these are.
   */
  const isAccountRequest = async (req: FastifyRequest): Promise<boolean> => {
    const name = (req.params as { repo: string }).repo;
    const repo = await svc.repos.get(name);
    const id = req.identity ?? ANONYMOUS;
    const readable = repo ? (await auth.level(id, repo)) >= LEVEL.read : false;
    if (repo && repo.format !== 'npm' && readable) return false;
    if (repo && readable) req.artifact = { repo: repo.name, format: 'npm' };
    return true;
  };

  const jsonBody = async (req: FastifyRequest, what: string): Promise<Record<string, unknown>> => {
    const body = parseJson(await collectRequest(req.raw, 64 * 1024, what), 'BAD_REQUEST', `expected a JSON ${what}`);
    if (body && typeof body === 'object' && !Array.isArray(body)) return body as Record<string, unknown>;
    throw new AppError('BAD_REQUEST', `expected a JSON ${what}`);
  };

  /** A password check that counts as a login: throttled by client address like every other. */
  const passwordLogin = async (req: FastifyRequest, name: string, password: unknown, failure: string): Promise<Identity> => {
    const wait = auth.throttle.retryAfter(req.ip);
    if (wait > 0) throw new AppError('TOOMANYREQUESTS', 'too many failed logins from this address; try again later', undefined, { 'retry-after': String(wait) });
    const id = typeof password === 'string' ? await auth.fromPassword(name, password) : null;
    if (id) return id;
    await sleep(auth.throttle.failed(req.ip));
    throw new AppError('UNAUTHORIZED', failure, undefined, challenge(req, svc));
  };

  const needUser = (req: FastifyRequest): Identity & { user: string } => {
    const id = req.identity ?? ANONYMOUS;
    if (!id.user) throw new AppError('UNAUTHORIZED', 'not logged in', undefined, challenge(req, svc));
    return id as Identity & { user: string };
  };

  app.put('/:repo/-/user/*', async (req, reply) => {
    if (!(await isAccountRequest(req))) return dispatchRepoRequest(req, reply, svc);
    const m = /^org\.couchdb\.user:(.+)$/.exec(decodePath((req.params as { '*': string })['*']));
    if (!m) throw new AppError('NOT_FOUND', 'not found');
    const body = await jsonBody(req, 'user document');
    const name = typeof body.name === 'string' ? body.name : m[1];
    const failure = 'bad username or password (users are created by an admin: artifactapi user add)';
    // A body naming another user than the URL: refused, after the same scrypt as a wrong password.
    const id = await passwordLogin(req, name === m[1] ? name : '', body.password, failure);
    const { rec, secret } = await auth.createToken(id.user!, { description: `npm login on ${(req.params as { repo: string }).repo}` });
    return reply.code(201).send({ ok: true, id: `org.couchdb.user:${id.user}`, rev: `1-${rec.id}`, token: secret });
  });

  app.get('/:repo/-/whoami', async (req, reply) => {
    if (!(await isAccountRequest(req))) return dispatchRepoRequest(req, reply, svc);
    return reply.send({ username: needUser(req).user });
  });

  app.delete('/:repo/-/user/token/*', async (req, reply) => {
    if (!(await isAccountRequest(req))) return dispatchRepoRequest(req, reply, svc);
    const id = needUser(req);
    const secret = decodePath((req.params as { '*': string })['*']);
    const t = secret.startsWith(TOKEN_PREFIX) ? await auth.store.tokens.byHash(sha256hex(secret)) : null;
    // Someone else's token (or none): the same answer, so a guesser learns nothing.
    if (!t || (t.user !== id.user && !auth.isAdmin(id))) throw new AppError('NOT_FOUND', 'no such token');
    await auth.store.tokens.remove(t.id);
    return reply.send({ ok: true });
  });

  // ---- npm token list|create|revoke: npm's /-/npm/v1/tokens over our API tokens ----

  /** Through the pipeline's hooks, so the audit trail records creates and revokes; the handlers check who may. */
  const tokenOp = (req: FastifyRequest, reply: FastifyReply, action: Action, subject: string, handle: () => Promise<unknown>) =>
    runWithHooks({ format: 'npm', action, touches: [], subject }, { req, reply, svc }, handle);

  app.get('/:repo/-/npm/v1/tokens', async (req, reply) => {
    if (!(await isAccountRequest(req))) return dispatchRepoRequest(req, reply, svc);
    return tokenOp(req, reply, 'read', 'token', async () => {
      const objects = (await auth.store.tokens.list(needUser(req).user)).map(npmToken);
      return reply.send({ objects, total: objects.length, urls: {} });
    });
  });

  app.post('/:repo/-/npm/v1/tokens', async (req, reply) => {
    if (!(await isAccountRequest(req))) return dispatchRepoRequest(req, reply, svc);
    return tokenOp(req, reply, 'write', 'token', async () => {
      const id = needUser(req);
      const body = await jsonBody(req, 'token request');
      // Restrictions we cannot enforce are refused rather than dropped.
      const unsupported = ['cidr_whitelist', 'packages', 'scopes', 'orgs'].filter((k) => Array.isArray(body[k]) && (body[k] as unknown[]).length);
      if (body.packages_and_scopes_permission === 'no-access') unsupported.push('packages_and_scopes_permission');
      if (unsupported.length) throw new AppError('BAD_REQUEST', `this registry cannot restrict a token by ${unsupported.join(', ')}; it narrows by repo (artifactapi token create --repo)`);
      await passwordLogin(req, id.user, body.password, 'wrong password');
      // Never more than the token that asks: read-only (npm 10 `readonly`, npm 11 the permission), or the caller's own narrowing.
      const readonly = body.readonly === true || body.packages_and_scopes_permission === 'read-only';
      const actions = readonly ? ['read'] : id.narrow?.actions;
      const days = typeof body.expires === 'number' && body.expires > 0 ? body.expires : undefined;
      const name = [body.name, body.description].find((x): x is string => typeof x === 'string' && x !== '');
      const { rec, secret } = await auth.createToken(id.user, {
        actions, repos: id.narrow?.repos, description: name ?? `npm token create on ${(req.params as { repo: string }).repo}`,
        ...(days ? { expiresAt: Date.now() + days * 86_400_000 } : {}),
      });
      return reply.code(201).send({ ...npmToken(rec), token: secret });
    });
  });

  app.delete('/:repo/-/npm/v1/tokens/token/*', async (req, reply) => {
    if (!(await isAccountRequest(req))) return dispatchRepoRequest(req, reply, svc);
    // npm sends the key from the listing, or the whole token when given one.
    const key = decodePath((req.params as { '*': string })['*']);
    const byValue = key.startsWith(TOKEN_PREFIX);
    return tokenOp(req, reply, 'delete', byValue ? 'token' : `token:${key}`, async () => {
      const id = needUser(req);
      const t = byValue ? await auth.store.tokens.byHash(sha256hex(key)) : await auth.store.tokens.get(key);
      if (!t || (t.user !== id.user && !auth.isAdmin(id))) throw new AppError('NOT_FOUND', 'no such token');
      await auth.store.tokens.remove(t.id);
      return reply.code(204).send();
    });
  });
}

/**
 * A token as npm's listing shows it. Only a hash of the secret is kept, so `token` (npm prints it as
 * the secret's first characters) is just the prefix every token has; `key` is the token's id.
 */
function npmToken(t: TokenRec): Record<string, unknown> {
  const created = new Date(t.createdAt).toISOString();
  return {
    key: t.id, token: TOKEN_PREFIX, name: t.description ?? null, created, updated: created,
    readonly: !!t.actions && t.actions.every((a) => a === 'read'), cidr_whitelist: null,
    ...(t.expiresAt ? { expires: new Date(t.expiresAt).toISOString() } : {}),
  };
}

