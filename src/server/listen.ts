import type { Config } from '../config/schema.js';
import { buildApp } from './app.js';
import { createServices } from './services.js';

/** `artifactapi serve`: open stores, build the app, listen; SIGTERM/SIGINT finish in-flight requests, then exit. */
export async function serve(config: Config): Promise<void> {
  const svc = await createServices(config);
  const app = await buildApp(svc);
  const address = await app.listen({ host: config.server.host, port: config.server.port });
  svc.log.info({ address, dataDir: config.data_dir }, 'artifactapi listening');
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    svc.log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 30_000).unref();
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
}
