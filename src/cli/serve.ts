import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { serve } from '../server/listen.js';

export function serveCommand(program: Command): void {
  program
    .command('serve')
    .description('run the server')
    .option('--config <file>', 'config file (default ./artifactapi.toml if present)')
    .option('--port <n>', 'listen port (default 8000)')
    .option('--host <h>', 'bind address (default 0.0.0.0)')
    .option('--data-dir <dir>', 'data directory (default ./data)')
    .option('--workers <n>', 'worker processes, restarted when they die (default 1; 0: serve in this process, unsupervised)')
    .action(async (o: { config?: string; port?: string; host?: string; dataDir?: string; workers?: string }) => {
      const config = loadConfig({ file: o.config, flags: { 'server.port': o.port, 'server.host': o.host, data_dir: o.dataDir, 'server.workers': o.workers } });
      await serve(config);
    });
}
