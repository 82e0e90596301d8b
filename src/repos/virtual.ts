import { AppError, isAppError, statusOf } from '../lib/errors.js';
import type { RepoDef } from '../storage/meta/types.js';
import type { Services } from './services.js';

export const MAX_DEPTH = 8;

/**
 * A local repo that holds data it cannot read (a lost or quarantined blob, a
 * failing store). A virtual repo must fail on it rather than answer from its
 * other members: they may be the public registry offering the same name.
 */
export class LocalUnreadable extends AppError {
  constructor(repo: string) {
    super('INTERNAL', `${repo} cannot read its own data`);
  }
}

/** A member's failure that must end the whole virtual answer (fail closed): a local member's, other than 404. */
function failsClosed(member: RepoDef, err: unknown): unknown {
  if (err instanceof LocalUnreadable) return err;
  if (member.kind !== 'local' || isNotFound(err)) return null;
  return statusOf(err) >= 500 ? new LocalUnreadable(member.name) : err;
}

/** 404-like answers let a virtual repo move on to its next member. */
export function isNotFound(err: unknown): boolean {
  return statusOf(err) === 404;
}

/** A rejection handler: 404-like answers become null, anything else is rethrown. */
export function nullIfNotFound(err: unknown): null {
  if (isNotFound(err)) return null;
  throw err;
}

/**
 * Asks each member in order and returns the first answer. A member's 404 moves
 * on; other failures are remembered and, if no member has it, reported as 502;
 * a local member's failure ends the search (fail closed).
 */
export async function firstMember<T>(svc: Services, repo: RepoDef, depth: number, ask: (member: RepoDef) => Promise<T>): Promise<T> {
  if (depth > MAX_DEPTH) throw new AppError('BAD_REQUEST', `virtual repositories nest deeper than ${MAX_DEPTH}`);
  let failure: unknown;
  for (const name of repo.members ?? []) {
    const member = await svc.repos.get(name);
    if (!member) continue;
    try {
      return await ask(member);
    } catch (err) {
      if (isNotFound(err)) continue;
      const closed = failsClosed(member, err);
      svc.log.warn({ repo: repo.name, member: name, err: (err as Error).message }, 'virtual member failed');
      if (closed) throw closed;
      failure ??= err;
    }
  }
  if (failure) throw isAppError(failure) && failure.status >= 500 ? failure : new AppError('UPSTREAM_FAILED', 'every member that might have it failed');
  throw new AppError('NOT_FOUND', `not found in any member of ${repo.name}`);
}

/**
 * Asks every member at once (index merges). Returns the answers in member
 * order; 404s are dropped; 404 if all said 404, 502 if the rest all failed.
 * A local member's failure (here or in a nested virtual) fails the whole merge.
 */
export async function allMembers<T>(svc: Services, repo: RepoDef, depth: number, ask: (member: RepoDef) => Promise<T>): Promise<{ member: RepoDef; value: T }[]> {
  if (depth > MAX_DEPTH) throw new AppError('BAD_REQUEST', `virtual repositories nest deeper than ${MAX_DEPTH}`);
  const members = (await Promise.all((repo.members ?? []).map((n) => svc.repos.get(n)))).filter((m): m is RepoDef => !!m);
  const settled = await Promise.allSettled(members.map((m) => ask(m)));
  const out: { member: RepoDef; value: T }[] = [];
  let failures = 0;
  let closed: unknown = null;
  settled.forEach((r, i) => {
    if (r.status === 'fulfilled') out.push({ member: members[i], value: r.value });
    else if (!isNotFound(r.reason)) {
      failures++;
      closed ??= failsClosed(members[i], r.reason);
      svc.log.warn({ repo: repo.name, member: members[i].name, err: (r.reason as Error)?.message }, 'virtual member failed');
    }
  });
  if (closed) throw closed;
  if (out.length === 0) {
    if (failures > 0) throw new AppError('UPSTREAM_FAILED', `every member of ${repo.name} failed`);
    throw new AppError('NOT_FOUND', `not found in any member of ${repo.name}`);
  }
  return out;
}

/** A local or remote repo under a virtual one, with the member names leading to it from there. */
export interface Leaf<T> {
  member: RepoDef;
  path: string[];
  value: T;
}

/**
 * The leaves of `repo` (itself when it is local or remote; a virtual repo's members' leaves, in
 * member order depth first), asked at once with allMembers' rules at every level. `level` sees
 * each virtual repo's leaves (nested ones first) and may replace them: the dependency-confusion
 * rule applies at every level (repos/resolve.ts shadowing).
 */
export async function allLeaves<T>(svc: Services, repo: RepoDef, depth: number, ask: (leaf: RepoDef) => Promise<T>,
  level?: (repo: RepoDef, leaves: Leaf<T>[]) => Leaf<T>[] | Promise<Leaf<T>[]>, path: string[] = []): Promise<Leaf<T>[]> {
  if (repo.kind !== 'virtual') return [{ member: repo, path, value: await ask(repo) }];
  const parts = await allMembers(svc, repo, depth + 1, (m) => allLeaves(svc, m, depth + 1, ask, level, [...path, m.name]));
  const leaves = parts.flatMap((p) => p.value);
  return level ? level(repo, leaves) : leaves;
}

/** The leaves of `repo` (as allLeaves), asked one at a time until one answers something other than undefined. */
export async function firstLeaf<T>(svc: Services, repo: RepoDef, ask: (leaf: RepoDef) => Promise<T | undefined>, depth = 0): Promise<T | undefined> {
  if (repo.kind !== 'virtual') return ask(repo);
  if (depth > MAX_DEPTH) return undefined;
  for (const name of repo.members ?? []) {
    const m = await svc.repos.get(name);
    const hit = m ? await firstLeaf(svc, m, ask, depth + 1) : undefined;
    if (hit !== undefined) return hit;
  }
  return undefined;
}

/**
 * The merge rule of index documents that list many packages (helm index.yaml, APKINDEX): member
 * lists in member order, the first member listing a name+version wins. Each kept entry is marked
 * with the member that serves it. (Shadowed names are already gone: DocSource.entries.)
 */
export function mergeEntries<E>(parts: { member: RepoDef; entries: E[] }[], nameOf: (e: E) => string, versionOf: (e: E) => string): (E & { member: string })[] {
  const seen = new Set<string>();
  const out: (E & { member: string })[] = [];
  for (const p of parts) {
    for (const e of p.entries) {
      const key = `${nameOf(e)}\0${versionOf(e)}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ ...e, member: p.member.name });
    }
  }
  return out;
}
