import type { FastifyBaseLogger } from 'fastify';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { AppError } from '../lib/errors.js';
import { globToRegExp } from '../lib/glob.js';
import type { Action } from '../server/pipeline.js';
import type { GrantRec, IdentityStore, TokenRec, UserRec } from '../storage/meta/identities.js';
import type { RepoDef } from '../storage/meta/types.js';
import {
  dummyHash, hashPassword, loadSigningKey, newToken, randomPassword, sha256hex, signJwt, TOKEN_PREFIX, verifyJwt, verifyPassword,
} from './secrets.js';
import { IdentityCache, type IdentityView } from './cache.js';
import { LoginThrottle } from './throttle.js';

export const ACTIONS = ['read', 'write', 'delete', 'admin'] as const;
/** Each action includes the ones before it: write reads, delete writes, admin does all. */
export const LEVEL: Record<string, number> = { none: 0, read: 1, write: 2, delete: 3, admin: 4 };
/** `auth.anonymous = "write"` is everything but admin; `"admin"` is everything (a single-user host, throwaway test stacks). */
const ANON_LEVEL: Record<string, number> = { none: 0, read: 1, write: 3, admin: 4 };
/** Docker scope actions as levels. */
const DOCKER_LEVEL: Record<string, number> = { pull: 1, push: 2, delete: 3, '*': 3 };

/** Who is asking. No `user`: anonymous. */
export interface Identity {
  user?: string;
  admin: boolean;
  tokenId?: string;
  /** An API token's narrowing. */
  narrow?: { repos?: string[]; actions?: string[] };
  /** A docker Bearer token's grants: image names (REPO/IMAGE) and their actions. */
  docker?: { name: string; actions: string[] }[];
  /** The grants that apply (anonymous's and the user's), read with the credentials: one store view per request. */
  grants?: GrantRec[];
}

export const ANONYMOUS: Identity = Object.freeze({ admin: false }) as Identity;

export function parseActions(s: string | string[]): string[] {
  const list = (Array.isArray(s) ? s : s.split(',')).map((a) => a.trim()).filter(Boolean);
  for (const a of list) if (!(ACTIONS as readonly string[]).includes(a)) throw new AppError('BAD_REQUEST', `unknown action "${a}" (one of: ${ACTIONS.join(', ')})`);
  if (!list.length) throw new AppError('BAD_REQUEST', 'no actions given');
  return list;
}

const USER_RE = /^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,63}$/;
export function checkUserName(name: string): void {
  if (!USER_RE.test(name) || name === 'anonymous' || name === '__token__') throw new AppError('BAD_REQUEST', `"${name.slice(0, 80)}" is not a valid user name (${USER_RE.source}; not anonymous or __token__)`);
}

const matches = (pattern: string, repo: string) => pattern === repo || globToRegExp(pattern).test(repo);
const maxLevel = (actions: string[]) => Math.max(0, ...actions.map((a) => LEVEL[a] ?? 0));

/** A short cache of password checks that passed: scrypt per request would cost more than the request. Keyed by the stored hash too, so a changed password misses at once. */
class PasswordCache {
  private readonly ok = new Map<string, number>();
  constructor(private readonly ttl = 60_000) {}
  key = (user: string, password: string, stored: string) => sha256hex(`${user}\0${password}\0${stored}`);
  has(k: string) {
    const at = this.ok.get(k);
    return at !== undefined && Date.now() - at < this.ttl;
  }
  add(k: string) {
    if (this.ok.size > 10_000) this.ok.clear();
    this.ok.set(k, Date.now());
  }
}

/**
 * The docker token signing key: `auth.token_key` (or `_env`) as text, else the bytes of
 * `auth.token_key_file`, else data_dir/token.key, made on first start (load.ts leaves
 * token_key_file a path: it is the one secret read as bytes).
 */
async function tokenKey(config: Config): Promise<Buffer> {
  const a = config.auth as typeof config.auth & { token_key_file?: string };
  if (!a.token_key) return loadSigningKey(a.token_key_file || join(config.data_dir, 'token.key'));
  const key = Buffer.from(a.token_key);
  if (key.length < 32) throw new Error('auth.token_key: a token signing key needs at least 32 bytes');
  return key;
}

/**
 * Identities and permissions: who a request is (password, API token or docker Bearer token) and
 * what it may do on a repo. The store is the truth; its rows are read through a cache that checks
 * the store's auth epoch on every request, so revocation is immediate on every instance.
 */
export class Auth {
  readonly throttle: LoginThrottle;
  readonly cache: IdentityCache;
  private readonly passwords = new PasswordCache();
  /** Docker Bearer tokens whose signature checked out, by their text (a client sends the same one for minutes). */
  private readonly signed = new Map<string, Record<string, unknown>>();

  private constructor(readonly store: IdentityStore, readonly config: Config, private readonly key: Buffer, private readonly log: FastifyBaseLogger) {
    this.throttle = new LoginThrottle(config.auth.login_slow_after, config.auth.login_max_failures, config.auth.login_window);
    this.cache = new IdentityCache(store);
  }

  static async open(store: IdentityStore, config: Config, log: FastifyBaseLogger, o: { bootstrap?: boolean } = {}): Promise<Auth> {
    const key = await tokenKey(config);
    const auth = new Auth(store, config, key, log);
    if (o.bootstrap !== false) await auth.bootstrap();
    return auth;
  }

  /** First start: no user yet, so make `admin` with a random password in data_dir/admin.password (0600). */
  async bootstrap(): Promise<void> {
    if ((await this.store.users.count()) > 0) return;
    const password = randomPassword();
    const created = await this.store.users.put({ name: 'admin', passwordHash: await hashPassword(password), admin: true, createdAt: Date.now() });
    if (!created) return; // another instance was first
    const file = join(this.config.data_dir, 'admin.password');
    await writeFile(file, `${password}\n`, { mode: 0o600 });
    await chmod(file, 0o600);
    this.log.warn({ file, user: 'admin' }, 'created the first user; its password is in this file');
  }

  // ---- authentication ---------------------------------------------------------------------

  /** The identity behind an Authorization header; null when the credentials are bad. */
  async fromHeader(header: string | undefined): Promise<Identity | null | undefined> {
    if (!header) return undefined;
    const v = await this.cache.view();
    const sp = header.indexOf(' ');
    const scheme = (sp === -1 ? header : header.slice(0, sp)).toLowerCase();
    const value = sp === -1 ? '' : header.slice(sp + 1).trim();
    if (scheme === 'basic') {
      let decoded: string;
      try {
        decoded = Buffer.from(value, 'base64').toString('utf8');
      } catch {
        return null;
      }
      const colon = decoded.indexOf(':');
      if (colon === -1) return null;
      const user = decoded.slice(0, colon);
      const secret = decoded.slice(colon + 1);
      if (user === '__token__' || secret.startsWith(TOKEN_PREFIX)) return this.fromToken(secret, user === '__token__' ? undefined : user, v);
      return this.fromPassword(user, secret, v);
    }
    if (scheme === 'bearer') {
      if (value.startsWith(TOKEN_PREFIX)) return this.fromToken(value, undefined, v);
      return this.fromJwt(value, v);
    }
    return null;
  }

  /** user + password; an unknown user costs the same scrypt as a wrong password. */
  async fromPassword(name: string, password: string, v?: IdentityView): Promise<Identity | null> {
    v ??= await this.cache.view();
    const user = name ? await v.user(name) : null;
    const stored = user?.passwordHash ?? (await dummyHash());
    const k = this.passwords.key(name, password, stored);
    if (user && this.passwords.has(k)) return this.withGrants({ user: user.name, admin: user.admin }, v);
    const ok = await verifyPassword(password, stored);
    if (!ok || !user) return null;
    this.passwords.add(k);
    return this.withGrants({ user: user.name, admin: user.admin }, v);
  }

  async fromToken(secret: string, expectUser?: string, v?: IdentityView): Promise<Identity | null> {
    if (!secret.startsWith(TOKEN_PREFIX)) return null;
    v ??= await this.cache.view();
    const t = await v.tokenByHash(sha256hex(secret));
    if (!t || (t.expiresAt !== undefined && t.expiresAt <= Date.now())) return null;
    if (expectUser !== undefined && expectUser !== t.user) return null;
    const user = await v.user(t.user);
    if (!user) return null;
    return this.withGrants({ user: user.name, admin: user.admin, tokenId: t.id, narrow: { repos: t.repos, actions: t.actions } }, v);
  }

  private async fromJwt(jwt: string, v: IdentityView): Promise<Identity | null> {
    let p = this.signed.get(jwt) ?? null;
    if (p === null) {
      p = verifyJwt(jwt, this.key);
      if (!p || p.iss !== 'artifactapi') return null;
      if (this.signed.size >= 10_000) this.signed.clear();
      this.signed.set(jwt, p);
    }
    if ((p.exp as number) * 1000 <= Date.now()) return null;
    const access = Array.isArray(p.access) ? (p.access as { type?: string; name?: string; actions?: string[] }[]) : [];
    const docker = access.filter((a) => a.type === 'repository' && typeof a.name === 'string' && Array.isArray(a.actions))
      .map((a) => ({ name: a.name!, actions: a.actions! }));
    // Revoked since it was issued: its user or its API token gone means the Bearer token is too.
    if (typeof p.sub !== 'string' || !p.sub) return this.withGrants({ admin: false, docker }, v);
    const user = await v.user(p.sub);
    if (!user) return null;
    let narrow: Identity['narrow'];
    if (typeof p.tid === 'string') {
      const t = await v.token(p.tid);
      if (!t || t.user !== user.name || (t.expiresAt !== undefined && t.expiresAt <= Date.now())) return null;
      narrow = { repos: t.repos, actions: t.actions };
    }
    return this.withGrants({ user: user.name, admin: user.admin, tokenId: typeof p.tid === 'string' ? p.tid : undefined, narrow, docker }, v);
  }

  private async withGrants(id: Identity, v: IdentityView): Promise<Identity> {
    id.grants = await this.grantsIn(id, v);
    return id;
  }

  // ---- authorization ----------------------------------------------------------------------

  /** The anonymous level of a repo: its own `anonymous` option, else auth.anonymous. */
  anonymousLevel(repo: RepoDef): number {
    const v = typeof repo.options.anonymous === 'string' ? repo.options.anonymous : this.config.auth.anonymous;
    return ANON_LEVEL[v] ?? 0;
  }

  /** The grants that apply to `id`: anonymous's, and its user's (as read with its credentials, if it came with some). */
  async grantsFor(id: Identity): Promise<GrantRec[]> {
    return id.grants ?? this.grantsIn(id, await this.cache.view());
  }

  private async grantsIn(id: Identity, v: IdentityView): Promise<GrantRec[]> {
    const anonymous = await v.grants('anonymous');
    return id.user && !id.admin ? [...anonymous, ...(await v.grants(id.user))] : anonymous;
  }

  /** The highest action level `id` has on `repo` (0 none, 1 read, 2 write, 3 delete, 4 admin). */
  async level(id: Identity, repo: RepoDef): Promise<number> {
    return this.levelWith(id, repo, await this.grantsFor(id));
  }

  /** `level` with the grants already read (listing filters run synchronously). */
  levelWith(id: Identity, repo: RepoDef, grants: GrantRec[]): number {
    let level = this.anonymousLevel(repo);
    if (id.user && id.admin) level = LEVEL.admin;
    for (const g of grants) if (matches(g.pattern, repo.name)) level = Math.max(level, maxLevel(g.actions));
    return this.capped(id, repo, level);
  }

  private capped(id: Identity, repo: RepoDef, level: number): number {
    if (id.narrow?.repos && !id.narrow.repos.some((p) => matches(p, repo.name))) level = Math.min(level, this.anonymousLevel(repo));
    if (id.narrow?.actions) level = Math.min(level, Math.max(maxLevel(id.narrow.actions), this.anonymousLevel(repo)));
    if (id.docker) {
      let scoped = 0;
      for (const a of id.docker) {
        const repoOf = a.name.includes('/') ? a.name.slice(0, a.name.indexOf('/')) : this.config.docker.default_repo;
        if (repoOf === repo.name) scoped = Math.max(scoped, ...a.actions.map((x) => DOCKER_LEVEL[x] ?? 0));
      }
      level = Math.min(level, scoped);
    }
    return level;
  }

  async may(id: Identity, repo: RepoDef, action: Action): Promise<boolean> {
    return (await this.level(id, repo)) >= LEVEL[action];
  }

  /** Management: admin users, unless their token is narrowed below admin. */
  isAdmin(id: Identity): boolean {
    if (!id.user) return this.config.auth.anonymous === 'admin';
    if (!id.admin) return false;
    if (id.narrow?.repos) return false;
    if (id.narrow?.actions && !id.narrow.actions.includes('admin')) return false;
    return !id.docker;
  }

  // ---- docker Bearer tokens ----------------------------------------------------------------

  /**
   * GET /v2/token: a signed token granting, for each requested `repository:NAME:ACTIONS` scope,
   * only the actions the identity has on NAME's repo. `resolve` maps an image name to its repo.
   */
  async dockerToken(id: Identity, service: string | undefined, scopes: string[], resolve: (name: string) => Promise<RepoDef | null>) {
    const access: { type: string; name: string; actions: string[] }[] = [];
    for (const scope of scopes) {
      const m = /^repository(?:\([^)]*\))?:([^:]+):(.*)$/.exec(scope);
      if (!m) continue;
      const [, name, wanted] = m;
      const repo = await resolve(name);
      if (!repo) continue;
      const level = await this.level(id, repo);
      const actions = wanted.split(',').map((a) => a.trim()).filter((a) => {
        if (a === 'pull') return level >= LEVEL.read;
        if (a === 'push') return level >= LEVEL.write;
        if (a === 'delete' || a === '*') return level >= LEVEL.delete;
        return false;
      });
      access.push({ type: 'repository', name, actions });
    }
    if (scopes.includes('registry:catalog:*')) access.push({ type: 'registry', name: 'catalog', actions: ['*'] });
    const ttl = Math.max(60, Math.round(this.config.auth.docker_token_ttl / 1000));
    const now = Math.floor(Date.now() / 1000);
    const token = signJwt({
      iss: 'artifactapi', sub: id.user ?? '', aud: service ?? 'artifactapi', iat: now, nbf: now - 5, exp: now + ttl,
      jti: newToken().id, access, ...(id.tokenId ? { tid: id.tokenId } : {}),
    }, this.key);
    return { token, access_token: token, expires_in: ttl, issued_at: new Date(now * 1000).toISOString() };
  }

  // ---- management --------------------------------------------------------------------------

  async addUser(name: string, password: string, admin = false): Promise<UserRec> {
    checkUserName(name);
    if (password.length < 8) throw new AppError('BAD_REQUEST', 'a password needs at least 8 characters');
    const u: UserRec = { name, passwordHash: await hashPassword(password), admin, createdAt: Date.now() };
    if (!(await this.store.users.put(u))) throw new AppError('CONFLICT', `user "${name}" exists`);
    return u;
  }

  async setPassword(name: string, password: string): Promise<void> {
    const u = await this.store.users.get(name);
    if (!u) throw new AppError('NOT_FOUND', `no user named "${name}"`);
    if (password.length < 8) throw new AppError('BAD_REQUEST', 'a password needs at least 8 characters');
    await this.store.users.put({ ...u, passwordHash: await hashPassword(password) }, { replace: true });
  }

  async createToken(user: string, o: { repos?: string[]; actions?: string[]; expiresAt?: number; description?: string } = {}): Promise<{ rec: TokenRec; secret: string }> {
    if (!(await this.store.users.get(user))) throw new AppError('NOT_FOUND', `no user named "${user}"`);
    const { id, secret } = newToken();
    const rec: TokenRec = {
      id, hash: sha256hex(secret), user, createdAt: Date.now(),
      ...(o.description ? { description: o.description.slice(0, 200) } : {}),
      ...(o.repos?.length ? { repos: o.repos } : {}),
      ...(o.actions?.length ? { actions: parseActions(o.actions) } : {}),
      ...(o.expiresAt ? { expiresAt: o.expiresAt } : {}),
    };
    await this.store.tokens.put(rec);
    return { rec, secret };
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}

/** What the API and CLI show of a token: never its hash. */
export function publicToken(t: TokenRec): Record<string, unknown> {
  return {
    id: t.id, user: t.user, ...(t.description ? { description: t.description } : {}),
    repos: t.repos ?? null, actions: t.actions ?? null,
    expiresAt: t.expiresAt ? new Date(t.expiresAt).toISOString() : null, createdAt: new Date(t.createdAt).toISOString(),
  };
}

export function publicUser(u: UserRec): Record<string, unknown> {
  return { name: u.name, admin: u.admin, createdAt: new Date(u.createdAt).toISOString() };
}
