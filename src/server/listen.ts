import { dirname } from 'node:path';
import type { Config } from '../config/schema.js';
import { sweepDeadTempDirs } from '../lib/temp-dirs.js';
import { buildApp } from './app.js';
import { createServices } from './services.js';
import { isPrimary, onStopRequest, supervise } from './supervise.js';

/**
 * `artifactapi serve`: a supervising primary (supervise.ts) and its workers, each of which opens the
 * stores, builds the app and listens; SIGTERM/SIGINT finish in-flight transfers (within
 * server.shutdown_timeout), then exit.
 */
export async function serve(config: Config): Promise<void> {
  // workers = 0: this process serves itself, for an outside supervisor (systemd, a container runtime) or a profiler.
  if (isPrimary() && config.server.workers > 0) return supervise(config);
  const svc = await createServices(config);
  const dead = await sweepDeadTempDirs(dirname(svc.blob.tempDir));
  if (dead.length) svc.log.info({ dirs: dead.length, bytes: dead.reduce((n, d) => n + d.bytes, 0) }, 'removed temp files of dead processes');
  const app = await buildApp(svc);
  const address = await app.listen({ host: config.server.host, port: config.server.port });
  svc.log.info({ address, dataDir: config.data_dir }, 'artifactapi listening');
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    svc.log.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      svc.log.error({ ms: config.server.shutdown_timeout }, 'shutdown timed out; dropping the transfers still running');
      process.exit(1);
    }, config.server.shutdown_timeout).unref();
    try {
      await app.close();
      await svc.close();
      clearTimeout(force);
      process.exit(0);
    } catch (err) {
      svc.log.error({ err }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  onStopRequest((signal) => void shutdown(signal));
}
