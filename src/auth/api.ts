import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../lib/errors.js';
import { parseDuration } from '../lib/units.js';
import type { Services } from '../repos/services.js';
import { guarded } from '../server/api/guard.js';
import { BASIC_CHALLENGE } from '../server/errors.js';
import { ANONYMOUS, checkUserName, parseActions, publicToken, publicUser, type Auth } from './auth.js';
import { randomPassword } from './secrets.js';

type Body = Record<string, unknown>;
const bodyOf = (req: FastifyRequest): Body => {
  const b = req.body;
  if (b === undefined || b === null) return {};
  if (typeof b !== 'object' || Array.isArray(b)) throw new AppError('BAD_REQUEST', 'expected a JSON object');
  return b as Body;
};
const str = (b: Body, k: string): string | undefined => {
  const v = b[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new AppError('BAD_REQUEST', `"${k}" must be a string`);
  return v;
};
const strs = (b: Body, k: string): string[] | undefined => {
  const v = b[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v.split(',').map((x) => x.trim()).filter(Boolean);
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new AppError('BAD_REQUEST', `"${k}" must be a list of strings`);
  return v as string[];
};

/** A token's expiry: a duration from now ("30d") or an ISO date. */
export function expiryOf(v: string | undefined, now = Date.now()): number | undefined {
  if (!v) return undefined;
  try {
    return now + parseDuration(v);
  } catch {
    const t = Date.parse(v);
    if (Number.isNaN(t) || t <= now) throw new AppError('BAD_REQUEST', `expires: "${v}" is neither a duration (30d) nor a future date`);
    return t;
  }
}

const PATTERN_RE = /^[a-z0-9*?][a-z0-9._*?-]{0,63}$/;

/** Users, tokens and permissions under /api/v1/: what `artifactapi user|token|perm` call. Admin, except one's own tokens. */
export async function identitiesApi(app: FastifyInstance, svc: Services, auth: Auth): Promise<void> {
  const admin = { action: 'admin' as const };
  const self = { action: 'read' as const };
  const who = (req: FastifyRequest) => req.identity ?? ANONYMOUS;
  const needUser = (req: FastifyRequest) => {
    const id = who(req);
    if (!id.user) throw new AppError('UNAUTHORIZED', 'authentication required', undefined, { 'www-authenticate': BASIC_CHALLENGE });
    return id;
  };

  app.get('/api/v1/whoami', guarded(svc, self, async (req) => {
    const id = who(req);
    return { user: id.user ?? null, admin: auth.isAdmin(id), tokenId: id.tokenId ?? null };
  }));

  app.get('/api/v1/users', guarded(svc, admin, async () => (await auth.store.users.list()).map(publicUser)));

  app.post('/api/v1/users', guarded(svc, { ...admin, subject: (req) => `user:${str(bodyOf(req), 'name') ?? ''}` }, async (req, reply) => {
    const b = bodyOf(req);
    const name = str(b, 'name') ?? '';
    checkUserName(name);
    const given = str(b, 'password');
    const password = given ?? randomPassword();
    const u = await auth.addUser(name, password, b.admin === true);
    // A generated password is shown once, here; a given one never comes back.
    return reply.code(201).send({ ...publicUser(u), ...(given === undefined ? { password } : {}) });
  }));

  app.put('/api/v1/users/:name/password', guarded(svc, self, async (req, reply) => {
    const name = (req.params as { name: string }).name;
    const id = needUser(req);
    if (id.user !== name && !auth.isAdmin(id)) throw new AppError('DENIED', 'only an admin changes another user\'s password');
    const password = str(bodyOf(req), 'password');
    if (!password) throw new AppError('BAD_REQUEST', '"password" is required');
    await auth.setPassword(name, password);
    return reply.code(204).send();
  }));

  app.delete('/api/v1/users/:name', guarded(svc, { ...admin, subject: (req) => `user:${(req.params as { name: string }).name}` }, async (req, reply) => {
    if (!(await auth.store.users.remove((req.params as { name: string }).name))) throw new AppError('NOT_FOUND', 'no such user');
    return reply.code(204).send();
  }));

  app.get('/api/v1/tokens', guarded(svc, self, async (req) => {
    const id = needUser(req);
    const q = (req.query as { user?: string }).user;
    const user = auth.isAdmin(id) ? q : id.user;
    if (q && q !== user) throw new AppError('DENIED', 'only an admin lists another user\'s tokens');
    return (await auth.store.tokens.list(user)).map(publicToken);
  }));

  app.post('/api/v1/tokens', guarded(svc, { ...self, subject: () => 'token' }, async (req, reply) => {
    const id = needUser(req);
    const b = bodyOf(req);
    const user = str(b, 'user') ?? id.user!;
    if (user !== id.user && !auth.isAdmin(id)) throw new AppError('DENIED', 'only an admin makes tokens for another user');
    // A token never carries more than the one that made it.
    const actions = strs(b, 'actions') ?? id.narrow?.actions;
    const repos = strs(b, 'repos') ?? id.narrow?.repos;
    if (actions) parseActions(actions);
    for (const p of repos ?? []) if (!PATTERN_RE.test(p)) throw new AppError('BAD_REQUEST', `"${p}" is not a repo pattern`);
    const { rec, secret } = await auth.createToken(user, { actions, repos, expiresAt: expiryOf(str(b, 'expires')), description: str(b, 'description') });
    return reply.code(201).send({ ...publicToken(rec), token: secret });
  }));

  app.delete('/api/v1/tokens/:id', guarded(svc, { ...self, subject: (req) => `token:${(req.params as { id: string }).id}` }, async (req, reply) => {
    const id = needUser(req);
    const t = await auth.store.tokens.get((req.params as { id: string }).id);
    if (!t || (t.user !== id.user && !auth.isAdmin(id))) throw new AppError('NOT_FOUND', 'no such token');
    await auth.store.tokens.remove(t.id);
    return reply.code(204).send();
  }));

  app.get('/api/v1/permissions', guarded(svc, admin, async (req) => {
    const subject = (req.query as { subject?: string }).subject;
    return (await auth.store.grants.list(subject)).map((g) => ({ subject: g.subject, pattern: g.pattern, actions: g.actions, createdAt: new Date(g.createdAt).toISOString() }));
  }));

  app.post('/api/v1/permissions', guarded(svc, { ...admin, subject: (req) => `grant:${str(bodyOf(req), 'subject') ?? ''}` }, async (req, reply) => {
    const b = bodyOf(req);
    const subject = str(b, 'subject') ?? '';
    const pattern = str(b, 'pattern') ?? '';
    const actions = parseActions(strs(b, 'actions') ?? []);
    if (subject !== 'anonymous') {
      checkUserName(subject);
      if (!(await auth.store.users.get(subject))) throw new AppError('NOT_FOUND', `no user named "${subject}"`);
    }
    if (!PATTERN_RE.test(pattern)) throw new AppError('BAD_REQUEST', `"${pattern}" is not a repo pattern (a name, * and ? allowed)`);
    await auth.store.grants.put({ subject, pattern, actions, createdAt: Date.now() });
    return reply.code(201).send({ subject, pattern, actions });
  }));

  app.delete('/api/v1/permissions', guarded(svc, { ...admin, subject: () => 'grant' }, async (req, reply) => {
    const q = req.query as { subject?: string; pattern?: string };
    if (!q.subject || !q.pattern) throw new AppError('BAD_REQUEST', 'subject and pattern are required');
    if (!(await auth.store.grants.remove(q.subject, q.pattern))) throw new AppError('NOT_FOUND', 'no such grant');
    return reply.code(204).send();
  }));
}
