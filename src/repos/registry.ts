import type { Config, RepoConfig, Schema } from '../config/schema.js';
import { FORMATS } from '../config/schema.js';
import { decodePath, tryDecode } from '../lib/decode.js';
import { AppError } from '../lib/errors.js';
import { redact, repoSecret } from '../lib/secrets.js';
import type { MetaStore, RepoDef } from '../storage/meta/types.js';
import type { UpstreamSettings } from '../upstream/client.js';

export const RESERVED_NAMES = new Set(['api', 'v2', 'health', 'metrics', '-', '.well-known']);
const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const CACHE_MS = 2000;

export function validateRepoName(name: string): void {
  if (!NAME_RE.test(name)) throw new AppError('NAME_INVALID', `invalid repo name "${name}": must match ${NAME_RE.source}`);
  if (RESERVED_NAMES.has(name)) throw new AppError('NAME_INVALID', `"${name}" is a reserved name`);
}

/**
 * Repository definitions: validation (names, kinds, members, cycles) and a
 * short-lived cache, so the request path does not hit the database for every
 * lookup while other instances' changes still show within seconds.
 */
export class RepoRegistry {
  private cache = new Map<string, { def: RepoDef | null; at: number }>();

  /** `supported`: the formats this build serves; `schema`: the options each format takes. */
  constructor(private readonly meta: MetaStore, private readonly config: Config, private readonly supported: readonly string[], readonly schema: Schema) {}

  async get(name: string): Promise<RepoDef | null> {
    const hit = this.cache.get(name);
    if (hit && Date.now() - hit.at < CACHE_MS) return hit.def;
    const def = await this.meta.repos.get(name);
    this.cache.set(name, { def, at: Date.now() });
    return def;
  }

  async require(name: string): Promise<RepoDef> {
    const def = await this.get(name);
    if (!def) throw new AppError('REPO_NOT_FOUND', `no repository named "${name}"`);
    return def;
  }

  list(): Promise<RepoDef[]> {
    return this.meta.repos.list();
  }

  /** Creates or replaces a repo after validating it against the others. */
  async put(input: RepoConfig, o: { create?: boolean; isSelf?: (upstream: URL) => boolean } = {}): Promise<RepoDef> {
    validateRepoName(input.name);
    if (!(FORMATS as readonly string[]).includes(input.format)) {
      throw new AppError('BAD_REQUEST', `unknown format "${input.format}" (one of: ${FORMATS.join(', ')})`);
    }
    if (!this.supported.includes(input.format)) throw new AppError('BAD_REQUEST', `format "${input.format}" is not supported by this build yet`);
    if (!['local', 'remote', 'virtual'].includes(input.kind)) throw new AppError('BAD_REQUEST', `kind must be local, remote or virtual`);
    const keys = this.schema.repoKeys(input.format);
    for (const k of Object.keys(input.options)) if (!(k in keys)) throw new AppError('BAD_REQUEST', `unknown repo option "${k}" for a ${input.format} repo`);
    const existing = await this.meta.repos.get(input.name);
    if (o.create && existing) throw new AppError('REPO_EXISTS', `repository "${input.name}" already exists`);
    if (existing && existing.format !== input.format) throw new AppError('CONFLICT', `repository "${input.name}" is ${existing.format}; its format cannot change`);
    const def: RepoDef = {
      name: input.name,
      format: input.format,
      kind: input.kind as RepoDef['kind'],
      options: input.options,
      createdAt: existing?.createdAt ?? Date.now(),
    };
    if (def.kind === 'remote') {
      if (!input.upstream) throw new AppError('BAD_REQUEST', 'a remote repository needs --upstream');
      def.upstream = normaliseUpstream(input.upstream, def);
      if (o.isSelf?.(new URL(def.upstream))) throw new AppError('BAD_REQUEST', `upstream ${def.upstream} is this server: a remote repo cannot proxy itself`);
    } else if (input.upstream) throw new AppError('BAD_REQUEST', 'only remote repositories take an upstream');
    if (def.kind === 'virtual') {
      def.members = input.members ?? [];
      await this.checkMembers(def);
    } else if (input.members?.length) throw new AppError('BAD_REQUEST', 'only virtual repositories take members');
    await this.meta.repos.put(def);
    this.cache.delete(def.name);
    return def;
  }

  async remove(name: string): Promise<void> {
    const def = await this.require(name);
    const users = (await this.meta.repos.list()).filter((r) => r.members?.includes(name));
    if (users.length) throw new AppError('CONFLICT', `"${name}" is a member of ${users.map((u) => u.name).join(', ')}; remove it there first`);
    await this.meta.tx(async (m) => {
      await m.files.removeRepo(def.name);
      await m.repos.remove(def.name);
    });
    this.cache.delete(name);
  }

  private async checkMembers(def: RepoDef): Promise<void> {
    const seen = new Set<string>();
    for (const m of def.members ?? []) {
      if (seen.has(m)) throw new AppError('BAD_REQUEST', `member "${m}" is listed twice`);
      seen.add(m);
      const member = m === def.name ? def : await this.meta.repos.get(m);
      if (!member) throw new AppError('BAD_REQUEST', `member "${m}" does not exist`);
      if (member.format !== def.format) throw new AppError('BAD_REQUEST', `member "${m}" is ${member.format}, not ${def.format}`);
    }
    // Cycle check: walk members of members, with this def in place of its stored version.
    const visit = async (name: string, path: string[]): Promise<void> => {
      if (path.includes(name)) throw new AppError('BAD_REQUEST', `member cycle: ${[...path, name].join(' -> ')}`);
      const r = name === def.name ? def : await this.meta.repos.get(name);
      for (const m of r?.members ?? []) await visit(m, [...path, name]);
    };
    await visit(def.name, []);
    const dl = def.options.default_local as string | undefined;
    if (dl && !def.members?.includes(dl)) throw new AppError('BAD_REQUEST', `default_local "${dl}" is not a member`);
  }

  /** Upstream settings of a remote repo: per-repo options over [remote] defaults. */
  upstreamSettings(def: RepoDef): UpstreamSettings {
    const r = this.config.remote;
    const o = def.options as Record<string, any>;
    const u = new URL(def.upstream!);
    let username = o.username as string | undefined;
    let password = repoSecret(def, 'password');
    if (u.username && !username) {
      username = tryDecode(u.username) ?? u.username;
      password = tryDecode(u.password) ?? u.password;
    }
    u.username = '';
    u.password = '';
    return {
      repo: def.name,
      upstream: u.toString(),
      upstreamTimeout: o.upstream_timeout ?? r.upstream_timeout,
      idleTimeout: o.idle_timeout ?? r.idle_timeout,
      minRate: o.min_rate ?? r.min_rate,
      maxFails: r.max_fails,
      failTimeout: r.fail_timeout,
      authorization: username ? `Basic ${Buffer.from(`${username}:${password ?? ''}`).toString('base64')}` : undefined,
    };
  }

  metadataTtl(def: RepoDef): number {
    return (def.options.metadata_ttl as number | undefined) ?? this.config.remote.metadata_ttl;
  }

  negativeTtl(def: RepoDef): number {
    return (def.options.negative_ttl as number | undefined) ?? this.config.remote.negative_ttl;
  }

  /** A repo as shown to users (API, `repo show`): every secret of its format masked. */
  publicRepo(def: RepoDef): Record<string, unknown> {
    return publicRepo(def, this.schema.secretKeys(def.format));
  }
}

/** A repo as shown to users: the given secret options masked (`_file` / `_env` names stay). */
export function publicRepo(def: RepoDef, secrets: readonly string[]): Record<string, unknown> {
  const options = redact(def.options, secrets);
  return {
    name: def.name,
    format: def.format,
    kind: def.kind,
    ...(def.upstream ? { upstream: def.upstream } : {}),
    ...(def.members ? { members: def.members } : {}),
    options,
    createdAt: new Date(def.createdAt).toISOString(),
  };
}

function normaliseUpstream(raw: string, def: RepoDef): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new AppError('BAD_REQUEST', `upstream "${raw}" is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new AppError('BAD_REQUEST', 'upstream must be http or https');
  // Userinfo becomes stored credentials; the URL itself is kept without it.
  if (u.username) {
    const bad = 'upstream credentials: malformed percent-encoding';
    def.options = { ...def.options, username: decodePath(u.username, 'BAD_REQUEST', bad), password: decodePath(u.password, 'BAD_REQUEST', bad) };
    u.username = '';
    u.password = '';
  }
  if (!u.pathname.endsWith('/')) u.pathname += '/';
  return u.toString();
}

/** The upstream a repo mirrors (remote repos); undefined for repos that have none. */
export function upstreamOf(repo: RepoDef): URL | undefined {
  return repo.kind === 'remote' && repo.upstream ? new URL(repo.upstream) : undefined;
}
