import type { Command } from 'commander';
import pino from 'pino';
import { loadConfig } from '../config/load.js';
import { runGc } from '../maintenance/gc.js';
import { runVerify } from '../maintenance/verify.js';
import { formatBytes } from '../lib/units.js';
import type { Services } from '../repos/services.js';
import { createServices } from '../server/services.js';
import { table } from './table.js';

interface StoreFlags { config?: string; dataDir?: string; json?: boolean }

/** Warnings as one readable stderr line each (`warning: refetch failed (repo=…, err=…)`), never raw JSON. */
const humanLines = {
  write(line: string) {
    const { msg, level: _l, time: _t, pid: _p, hostname: _h, ...fields } = JSON.parse(line) as Record<string, unknown>;
    const facts = Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(', ');
    process.stderr.write(`warning: ${String(msg)}${facts ? ` (${facts})` : ''}\n`);
  },
};

/** gc and verify open the stores directly (same config as serve), not through the API. */
export async function withServices<T>(o: StoreFlags, fn: (svc: Services) => Promise<T>): Promise<T> {
  const config = loadConfig({ file: o.config, flags: { data_dir: o.dataDir } });
  const log = pino({ level: 'warn' }, humanLines);
  // Only serve makes the first admin; a maintenance run on a fresh directory leaves that to it.
  const svc = await createServices(config, log, { bootstrap: false });
  try {
    return await fn(svc);
  } finally {
    await svc.close();
  }
}

const storeOptions = (c: Command) => c
  .option('--config <file>', 'config file (default ./artifactapi.toml if present)')
  .option('--data-dir <dir>', 'data directory (default ./data)')
  .option('--json', 'machine-readable output');

export function maintenanceCommands(program: Command): void {
  storeOptions(program.command('gc').description('delete unreferenced blobs, evict over-size remote caches, expire uploads (safe while serve runs)'))
    .option('--dry-run', 'report what would be deleted, delete nothing')
    .action(async (o: StoreFlags & { dryRun?: boolean }) => {
      const report = await withServices(o, (svc) => runGc(svc, { dryRun: o.dryRun }));
      if (o.json) return void process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      const rows = Object.entries(report.summary).map(([action, s]) => ({ action, count: s.count, bytes: formatBytes(s.bytes) }));
      const body = rows.length ? table(rows, ['action', 'count', 'bytes']) : 'nothing to collect';
      process.stdout.write(`${report.dryRun ? 'gc (dry run): nothing deleted\n' : ''}${body}\n`);
    });

  storeOptions(program.command('verify').description('re-hash every stored blob; report (and with --repair fix) corrupt or missing ones'))
    .option('--repair', 'quarantine corrupt blobs, refetch remote content, drop unrecoverable rows')
    .action(async (o: StoreFlags & { repair?: boolean }) => {
      const report = await withServices(o, (svc) => runVerify(svc, { repair: o.repair }));
      if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else {
        // The full digest and repo/path: what an operator needs to find and re-push the artifact.
        const rows = report.findings.flatMap((f) => (f.rows.length ? f.rows : [undefined]).map((r) => ({
          digest: f.digest, problem: f.problem, 'referenced by': r ? `${r.repo}/${r.path}` : '(nothing)', repair: r?.repair ?? (report.repaired ? '' : 'none'),
        })));
        process.stdout.write(`checked ${report.checked} blobs (${formatBytes(report.bytes)}): ${report.findings.length} damaged\n`);
        if (rows.length) process.stdout.write(`${table(rows, ['digest', 'problem', 'referenced by', 'repair'])}\n`);
      }
      if (report.findings.length > 0) process.exitCode = 1;
    });
}
