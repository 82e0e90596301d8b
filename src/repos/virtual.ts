import { AppError, isAppError, statusOf } from '../lib/errors.js';
import type { RepoDef } from '../storage/meta/types.js';
import type { Services } from './services.js';

export const MAX_DEPTH = 8;

/** 404-like answers let a virtual repo move on to its next member. */
export function isNotFound(err: unknown): boolean {
  return statusOf(err) === 404;
}

/**
 * Asks each member in order and returns the first answer. A member's 404 moves
 * on; other failures are remembered and, if no member has it, reported as 502.
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
      svc.log.warn({ repo: repo.name, member: name, err: (err as Error).message }, 'virtual member failed');
      failure ??= err;
    }
  }
  if (failure) throw isAppError(failure) && failure.status >= 500 ? failure : new AppError('UPSTREAM_FAILED', 'every member that might have it failed');
  throw new AppError('NOT_FOUND', `not found in any member of ${repo.name}`);
}

/**
 * Asks every member at once (index merges). Returns the answers in member
 * order; 404s are dropped; 404 if all said 404, 502 if the rest all failed.
 */
export async function allMembers<T>(svc: Services, repo: RepoDef, depth: number, ask: (member: RepoDef) => Promise<T>): Promise<{ member: RepoDef; value: T }[]> {
  if (depth > MAX_DEPTH) throw new AppError('BAD_REQUEST', `virtual repositories nest deeper than ${MAX_DEPTH}`);
  const members = (await Promise.all((repo.members ?? []).map((n) => svc.repos.get(n)))).filter((m): m is RepoDef => !!m);
  const settled = await Promise.allSettled(members.map((m) => ask(m)));
  const out: { member: RepoDef; value: T }[] = [];
  let failures = 0;
  settled.forEach((r, i) => {
    if (r.status === 'fulfilled') out.push({ member: members[i], value: r.value });
    else if (!isNotFound(r.reason)) {
      failures++;
      svc.log.warn({ repo: repo.name, member: members[i].name, err: (r.reason as Error)?.message }, 'virtual member failed');
    }
  });
  if (out.length === 0) {
    if (failures > 0) throw new AppError('UPSTREAM_FAILED', `every member of ${repo.name} failed`);
    throw new AppError('NOT_FOUND', `not found in any member of ${repo.name}`);
  }
  return out;
}

/**
 * The merge rule of index documents that list many packages (helm index.yaml, APKINDEX): member
 * lists in member order, the first member listing a name+version wins; a name that a local repo
 * publishes anywhere below this virtual repo (entries carry `local`, through nested virtual repos
 * too) hides every non-local entry of that name (dependency confusion), unless `allow_shadowed`
 * lists it. Each kept entry is marked with the member that serves it.
 */
export function mergeEntries<E extends { local: boolean }>(repo: RepoDef, parts: { member: RepoDef; entries: E[] }[],
  nameOf: (e: E) => string, versionOf: (e: E) => string): (E & { member: string })[] {
  const allowed = new Set((repo.options.allow_shadowed as string[] | undefined) ?? []);
  const owned = new Set<string>();
  for (const p of parts) for (const e of p.entries) if (e.local) owned.add(nameOf(e));
  const seen = new Set<string>();
  const out: (E & { member: string })[] = [];
  for (const p of parts) {
    for (const e of p.entries) {
      const name = nameOf(e);
      if (!e.local && owned.has(name) && !allowed.has(name)) continue;
      const key = `${name}\0${versionOf(e)}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ ...e, member: p.member.name });
    }
  }
  return out;
}
