import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { AppError } from '../lib/errors.js';

/**
 * Loop detection (Verdaccio's, by Via): every upstream request carries the
 * Via hops of the client request that caused it plus this process's own,
 * `1.1 artifactapi-<random id>`. A request that arrives carrying our own hop
 * came back to us through a chain of remotes; one with too many artifactapi
 * hops is a chain too long to be anything but a loop. Both are refused (508)
 * before any work, so a loop ends at once instead of waiting on itself.
 */
export const SELF_HOP = `1.1 artifactapi-${randomBytes(6).toString('hex')}`;
export const MAX_HOPS = 8;

const incoming = new AsyncLocalStorage<string>();

/** Checks a client request's Via; runs `next` with it remembered for the upstream requests it causes. */
export function withHops(via: string | string[] | undefined, next: () => void): void {
  const hops = (Array.isArray(via) ? via.join(', ') : via ?? '').split(',').map((h) => h.trim()).filter(Boolean);
  if (hops.includes(SELF_HOP)) throw new AppError('LOOP_DETECTED', 'request loop: this server is its own upstream through a chain of remote repositories');
  if (hops.filter((h) => /^\S+\s+artifactapi\b/.test(h)).length >= MAX_HOPS) {
    throw new AppError('LOOP_DETECTED', `request passed through more than ${MAX_HOPS} artifactapi servers`);
  }
  incoming.run(hops.join(', '), next);
}

/** The Via header for an upstream request: the hops so far, then ours. */
export function outgoingVia(): string {
  const before = incoming.getStore();
  return before ? `${before}, ${SELF_HOP}` : SELF_HOP;
}
