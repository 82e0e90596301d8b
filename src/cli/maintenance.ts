import type { Command } from 'commander';
import pino from 'pino';
import { loadConfig } from '../config/load.js';
import { runGc } from '../maintenance/gc.js';
import { runVerify } from '../maintenance/verify.js';
import { formatBytes } from '../lib/units.js';
import type { Services } from '../repos/services.js';
import { createServices } from '../server/services.js';
import { table } from './table.js';
import { ApiClient } from './api-client.js';
import { auditPage, auditQuery } from '../server/api/audit.js';
import type { AuditEntry } from '../storage/meta/audit.js';

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

interface AuditFlags extends StoreFlags { url?: string; token?: string; repo?: string; user?: string; action?: string; since?: string; limit?: string; before?: string }

const auditRows = (entries: AuditEntry[]) => entries.map((e) => ({
  id: e.id, time: new Date(e.at).toISOString(), user: e.actor, token: e.tokenId, address: e.address, action: e.action,
  repo: e.repo, subject: e.subject, status: e.status, outcome: e.outcome,
}));

export function maintenanceCommands(program: Command): void {
  storeOptions(program.command('audit').description('show the audit trail: writes, deletes and admin actions, allowed or refused (newest first)'))
    .option('--url <server>', 'ask a running server (default when neither --config nor --data-dir is given: $ARTIFACTAPI_URL or http://127.0.0.1:8000)')
    .option('--token <token>', 'API token of an admin (default $ARTIFACTAPI_TOKEN)')
    .option('--repo <name>', 'only this repo')
    .option('--user <name>', 'only this user (anonymous for unauthenticated requests)')
    .option('--action <action>', 'write, delete or admin')
    .option('--since <when>', 'a duration back from now ("24h") or a time ("2026-12-01T00:00:00Z")')
    .option('--limit <n>', 'entries per page (default 100, at most 1000)')
    .option('--before <id>', 'the page after this entry id (the "next" of the previous page)')
    .action(async (o: AuditFlags) => {
      const filters = { repo: o.repo, user: o.user, action: o.action, since: o.since, limit: o.limit, before: o.before };
      let page: { entries: AuditEntry[]; next?: string };
      if (o.config || o.dataDir) {
        page = await withServices(o, (svc) => auditPage(svc.meta, auditQuery(filters)));
      } else {
        const qs = new URLSearchParams(Object.entries(filters).filter((kv): kv is [string, string] => kv[1] !== undefined));
        page = await ApiClient.from(o.url, o.token).request('GET', `/api/v1/audit${qs.size ? `?${qs}` : ''}`);
      }
      if (o.json) return void process.stdout.write(`${JSON.stringify(page, null, 2)}\n`);
      process.stdout.write(`${table(auditRows(page.entries), ['id', 'time', 'user', 'token', 'address', 'action', 'repo', 'subject', 'status', 'outcome'])}\n`);
      if (page.next) process.stdout.write(`more: --before ${page.next}\n`);
    });

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
