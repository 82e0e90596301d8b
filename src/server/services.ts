import pino from 'pino';
import type { Config } from '../config/schema.js';
import { AccessLog, Fills, NegativeCache } from '../repos/remote.js';
import { Lru } from '../lib/lru.js';
import { DerivedDocs } from '../repos/derived.js';
import { Caches } from '../repos/caches.js';
import { RepoRegistry } from '../repos/registry.js';
import type { Services } from '../repos/services.js';
import { FORMAT_HANDLERS, SCHEMA } from '../formats/index.js';
import { openStores } from '../storage/open.js';
import { UpstreamClient } from '../upstream/client.js';
import { ConfigError, parseRepoEntry } from '../config/load.js';
import { newPipelineHooks } from './pipeline.js';
import { Auth } from '../auth/auth.js';
import { openIdentityStore } from '../storage/meta/identities.js';
import { AuditTrail } from '../audit/trail.js';
import { Metrics } from '../metrics/metrics.js';

/** Buffered stdout (8 KiB) for the hot path, flushed at least every second so a quiet server's lines are not held back. */
export function createLogger(config: Config, destination?: pino.DestinationStream) {
  return pino({
    level: config.server.log_level,
    // Secrets never reach the log: credentials in headers, and any field named for a secret.
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie', 'headers["proxy-authorization"]',
        'password', '*.password', 'token', '*.token', 'secret', '*.secret', 'access_token', '*.access_token'],
      censor: '[redacted]',
    },
  }, destination ?? pino.destination({ dest: 1, sync: false, minLength: 8192, periodicFlush: 1000 }));
}

/**
 * Weight budget of parsed and rendered documents of every format (npm's packuments and their
 * rendered forms, pypi pages, helm and apk indexes, rpm checksums): one entry may take a quarter,
 * so a 20 MiB packument (counted 3x parsed) still fits.
 */
const PARSED_DOCS_BUDGET = 256 * 1024 * 1024;

/** Opens the stores and everything built on them; applies repos declared in the config file. */
export async function createServices(config: Config, log = createLogger(config), o: { bootstrap?: boolean } = {}): Promise<Services> {
  const stores = await openStores(config);
  const repos = new RepoRegistry(stores.meta, config, Object.keys(FORMAT_HANDLERS), SCHEMA);
  const metrics = new Metrics(stores.meta);
  const upstream = new UpstreamClient(log.child({ module: 'upstream' }) as unknown as Services['log'], (repo, status, seconds) => metrics.upstream(repo, status, seconds));
  const access = new AccessLog(stores.meta);
  // Config-declared repos, before auth's first-start bootstrap (a bad config creates no admin): first
  // those without members, then virtual ones, so members exist when checked.
  const declared = config.repos.map((r, i) => ({ r, i })).sort((a, b) => Number(a.r.kind === 'virtual') - Number(b.r.kind === 'virtual'));
  for (const { r, i } of declared) {
    try {
      await repos.put(parseRepoEntry({ name: r.name, format: r.format, kind: r.kind, upstream: r.upstream, members: r.members, ...r.options }, 'config'));
    } catch (err) {
      // Name the entry and the file: a bad config is one line that says where.
      await stores.close().catch(() => {});
      throw new ConfigError(`${config.source ?? 'config'}: repos[${i}] ("${r.name}"): ${(err as Error).message}`);
    }
  }
  let auth: Auth;
  try {
    auth = await Auth.open(await openIdentityStore(config.database.url, { busyTimeout: config.database.busy_timeout }), config, log.child({ module: 'auth' }) as unknown as Services['log'], o);
  } catch (err) {
    await stores.close().catch(() => {});
    throw err;
  }
  const audit = new AuditTrail(stores.meta, log);
  const pipeline = newPipelineHooks();
  pipeline.after.push(audit.hook);
  const svc: Services = {
    ...stores,
    config,
    repos,
    upstream,
    fills: new Fills(stores.blob),
    negative: new NegativeCache(),
    access,
    derived: new DerivedDocs(),
    caches: new Caches(),
    parsedDocs: new Lru<unknown>(PARSED_DOCS_BUDGET, 30_000),
    pipeline,
    audit,
    metrics,
    log: log as unknown as Services['log'],
    auth,
    async close() {
      await access.flush();
      await audit.flush();
      await upstream.close();
      await auth.close();
      await stores.close();
    },
  };
  return svc;
}
