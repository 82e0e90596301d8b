import cluster, { type Worker } from 'node:cluster';
import pino from 'pino';
import type { Config } from '../config/schema.js';
import { serveClusterMetrics } from '../metrics/metrics.js';

const MIN_BACKOFF = 100;
const MAX_BACKOFF = 10_000;
/** A worker that lived this long before dying restarts at once again. */
const STABLE_MS = 30_000;

/**
 * The primary of `artifactapi serve`: forks `server.workers` workers (node:cluster, so they share the
 * listening socket), restarts one that dies (logging its exit code or signal, with backoff if it keeps
 * dying), and on SIGTERM/SIGINT asks each worker to drain (onStopRequest), then exits 0 when they all
 * exited cleanly. A worker that fails before any worker ever listened (a bad config) ends the primary
 * with its exit code, since a restart would fail the same way.
 */
export function supervise(config: Config): void {
  const log = pino({ level: config.server.log_level }, pino.destination({ dest: 1, sync: true })).child({ module: 'supervisor' });
  let stopping = false;
  let everListened = false;
  let backoff = MIN_BACKOFF;
  let failed = false;
  const started = new Map<Worker, number>();

  const fork = () => {
    const w = cluster.fork();
    started.set(w, Date.now());
    w.on('listening', () => {
      everListened = true;
      log.info({ pid: w.process.pid }, 'worker listening');
    });
    w.on('exit', (code, signal) => {
      const lived = Date.now() - (started.get(w) ?? 0);
      started.delete(w);
      if (stopping) {
        if (code !== 0) failed = true;
        if (started.size === 0) process.exit(failed ? 1 : 0);
        return;
      }
      if (!everListened) {
        for (const other of started.keys()) other.process.kill('SIGKILL');
        process.exit(code ?? 1);
      }
      backoff = lived > STABLE_MS ? MIN_BACKOFF : Math.min(backoff * 2, MAX_BACKOFF);
      const delay = lived > STABLE_MS ? 0 : backoff;
      log.error({ pid: w.process.pid, code, signal, restartInMs: delay }, 'worker died; restarting');
      setTimeout(() => { if (!stopping) fork(); }, delay);
    });
  };

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping workers');
    if (started.size === 0) process.exit(0);
    for (const w of started.keys()) {
      // The message starts the worker's drain; disconnect() then makes this process stop handing out
      // connections at once, so new ones are refused right away rather than accepted here and dropped.
      w.on('error', () => {});
      w.send({ stop: signal });
      w.disconnect();
    }
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  serveClusterMetrics();
  for (let i = 0; i < config.server.workers; i++) fork();
}

export const isPrimary = (): boolean => cluster.isPrimary;

/** In a worker: `fn` runs when the primary asks it to stop (it disconnects the worker right after). */
export function onStopRequest(fn: (signal: NodeJS.Signals) => void): void {
  process.on('message', (m: { stop?: NodeJS.Signals } | null) => {
    if (m?.stop) fn(m.stop);
  });
}
