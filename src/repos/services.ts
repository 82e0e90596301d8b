import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config/schema.js';
import type { Lru } from '../lib/lru.js';
import type { Stores } from '../storage/open.js';
import type { UpstreamClient } from '../upstream/client.js';
import type { AccessLog, Fills, NegativeCache } from './remote.js';
import type { DerivedDocs } from './derived.js';
import type { Caches } from './caches.js';
import type { RepoRegistry } from './registry.js';
import type { PipelineHooks } from '../server/pipeline.js';
import type { Auth } from '../auth/auth.js';
import type { AuditTrail } from '../audit/trail.js';
import type { Metrics } from '../metrics/metrics.js';

/** Everything a format or kind resolver needs, built once by server/listen.ts (or a test). */
export interface Services extends Stores {
  config: Config;
  repos: RepoRegistry;
  upstream: UpstreamClient;
  fills: Fills;
  negative: NegativeCache;
  access: AccessLog;
  /** Parsed upstream documents by blob digest (DocSource.cacheAs), bounded by weight. */
  parsedDocs: Lru<unknown>;
  /** Bounded in-memory caches of this server (the send path's small blobs...). */
  caches: Caches;
  /** Documents derived on write (helm index.yaml). */
  derived: DerivedDocs;
  /** Core hooks every operation passes through (auth before, audit after, listing filters). */
  pipeline: PipelineHooks;
  /** Every write, delete and admin operation (a pipeline after-hook), batched into the metadata store. */
  audit: AuditTrail;
  metrics: Metrics;
  log: FastifyBaseLogger;
  /** Users, tokens, permissions (src/auth/); attached to the app through the pipeline hooks. */
  auth: Auth;
}
