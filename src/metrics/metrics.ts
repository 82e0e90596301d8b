import cluster from 'node:cluster';
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { MetaStore } from '../storage/meta/types.js';

export const METRICS_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/**
 * The server's Prometheus metrics, one registry per Services (tests run several servers in one
 * process). Request metrics come from the app's onResponse hook, upstream ones from the upstream
 * client, gc figures from the audit trail (gc runs in its own process, from cron).
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'artifactapi_http_requests_total', help: 'Requests by repo, format, method, status and source (local, cache, remote)',
    labelNames: ['repo', 'format', 'method', 'status', 'source'], registers: [this.registry],
  });
  private readonly duration = new Histogram({
    name: 'artifactapi_http_request_duration_seconds', help: 'Time to the end of the response, by format and method',
    labelNames: ['format', 'method'], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120], registers: [this.registry],
  });
  private readonly sent = new Counter({ name: 'artifactapi_http_sent_bytes_total', help: 'Response body bytes by repo', labelNames: ['repo'], registers: [this.registry] });
  private readonly received = new Counter({ name: 'artifactapi_http_received_bytes_total', help: 'Request body bytes by repo', labelNames: ['repo'], registers: [this.registry] });
  private readonly cache = new Counter({
    name: 'artifactapi_cache_requests_total', help: 'Remote-repo reads answered from the cache (hit) or fetched upstream (miss)',
    labelNames: ['repo', 'result'], registers: [this.registry],
  });
  private readonly authFailures = new Counter({
    name: 'artifactapi_auth_failures_total', help: 'Requests refused for missing or bad credentials (401) or not enough rights (403)',
    labelNames: ['format', 'status'], registers: [this.registry],
  });
  private readonly upstreamRequests = new Counter({
    name: 'artifactapi_upstream_requests_total', help: 'Upstream requests by repo and status', labelNames: ['repo', 'status'], registers: [this.registry],
  });
  private readonly upstreamErrors = new Counter({
    name: 'artifactapi_upstream_errors_total', help: 'Upstream requests that failed without a response (network, timeout)', labelNames: ['repo'], registers: [this.registry],
  });
  private readonly upstreamLatency = new Histogram({
    name: 'artifactapi_upstream_response_seconds', help: 'Time to the upstream response headers, by repo',
    labelNames: ['repo'], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry],
  });
  private readonly joins = new Counter({
    name: 'artifactapi_singleflight_joins_total', help: 'Reads that joined a running upstream fetch instead of starting one', labelNames: ['repo'], registers: [this.registry],
  });

  constructor(meta: MetaStore) {
    const gcTotals = () => meta.audit.totals('admin', 'gc');
    new Gauge({
      name: 'artifactapi_gc_runs', help: 'gc runs recorded in the audit trail (within audit.retention)', registers: [this.registry],
      async collect() { this.set((await gcTotals()).count); },
    });
    new Gauge({
      name: 'artifactapi_gc_freed_bytes', help: 'Bytes gc runs freed (within audit.retention)', registers: [this.registry],
      async collect() { this.set((await gcTotals()).bytes); },
    });
    // In a worker of `serve`, the primary gathers every worker's registry (supervise.ts).
    // (Constructing one in the worker is what makes prom-client answer the primary's requests.)
    if (cluster.isWorker) {
      AggregatorRegistry.setRegistries([this.registry]);
      new AggregatorRegistry();
    }
  }

  request(r: { repo?: string; format?: string; method: string; status: number; source?: string; seconds: number; sent?: number; received?: number }): void {
    const repo = r.repo ?? '';
    this.requests.inc({ repo, format: r.format ?? '', method: r.method, status: String(r.status), source: r.source ?? '' });
    this.duration.observe({ format: r.format ?? '', method: r.method }, r.seconds);
    if (r.sent) this.sent.inc({ repo }, r.sent);
    if (r.received) this.received.inc({ repo }, r.received);
    if (r.source === 'cache' || r.source === 'remote') this.cache.inc({ repo, result: r.source === 'cache' ? 'hit' : 'miss' });
    if (r.status === 401 || r.status === 403) this.authFailures.inc({ format: r.format ?? '', status: String(r.status) });
  }

  upstream(repo: string, status: number | 'error', seconds: number): void {
    if (status === 'error') this.upstreamErrors.inc({ repo });
    else {
      this.upstreamRequests.inc({ repo, status: String(status) });
      this.upstreamLatency.observe({ repo }, seconds);
    }
  }

  singleFlightJoin(repo: string): void {
    this.joins.inc({ repo });
  }

  /** This process's metrics, or every worker's summed when serving under the supervisor. */
  async text(): Promise<string> {
    if (!cluster.isWorker) return this.registry.metrics();
    return askPrimary();
  }
}

const ASK = 'artifactapi:metrics';
let asked = 0;

/** A worker asks the primary, which asks every worker (prom-client's cluster protocol) and answers the sum. */
function askPrimary(): Promise<string> {
  const id = ++asked;
  return new Promise((resolve, reject) => {
    const onMessage = (m: { type?: string; id?: number; text?: string; error?: string }) => {
      if (m?.type !== `${ASK}:reply` || m.id !== id) return;
      process.off('message', onMessage);
      clearTimeout(timer);
      if (m.error !== undefined) reject(new Error(m.error));
      else resolve(m.text ?? '');
    };
    const timer = setTimeout(() => {
      process.off('message', onMessage);
      reject(new Error('the supervisor did not answer for the metrics of every worker'));
    }, 10_000);
    process.on('message', onMessage);
    process.send!({ type: ASK, id });
  });
}

/** In the primary: answers workers' requests for the cluster-wide metrics. */
export function serveClusterMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, m: { type?: string; id?: number }) => {
    if (m?.type !== ASK) return;
    aggregator.clusterMetrics().then(
      (text) => worker.send({ type: `${ASK}:reply`, id: m.id, text }),
      (err: Error) => worker.send({ type: `${ASK}:reply`, id: m.id, error: err.message }),
    );
  });
}
