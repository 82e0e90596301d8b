import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { pipeline, Transform, type Readable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import { AppError } from '../lib/errors.js';
import { Circuit } from './circuit.js';
import { outgoingVia } from './hops.js';

/** Upstream settings of one remote repo, with [remote] defaults applied (see repos/registry.ts). */
export interface UpstreamSettings {
  repo: string;
  upstream: string;
  upstreamTimeout: number;
  idleTimeout: number;
  /** Bytes per second a body must average over every idleTimeout window; 0: only silence counts. */
  minRate: number;
  maxFails: number;
  failTimeout: number;
  /** `Basic …` from configured credentials; only ever sent to the upstream's own origin. */
  authorization?: string;
}

export interface UpstreamOptions {
  method?: 'GET' | 'HEAD' | 'POST';
  /** Request body (POST pass-through: npm audit); small, so it is a buffer that survives redirects and a retry. */
  body?: Buffer;
  etag?: string;
  lastModified?: string;
  accept?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Replaces the configured authorization (docker bearer tokens). */
  authorization?: string;
}

export interface RawReply {
  status: number;
  headers: Record<string, string>;
  body: Readable;
  url: string;
}

export interface UpstreamReply {
  status: 200 | 304;
  headers: Record<string, string>;
  /** null for 304 and HEAD */
  body: Readable | null;
  url: string;
}

const MAX_REDIRECTS = 5;

function flatHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/**
 * Upstream HTTP over node:http(s), one keep-alive agent per protocol. Not undici: undici 7 (the
 * last line for Node 20) throws an uncatchable assertion from a socket handler when an upstream
 * closes the connection after a response whose body is paused by backpressure (python's
 * http.server does that on every response), and the process dies.
 */
export class UpstreamClient {
  private readonly http = new HttpAgent({ keepAlive: true, keepAliveMsecs: 1000, timeout: 10_000 });
  private readonly https = new HttpsAgent({ keepAlive: true, keepAliveMsecs: 1000, timeout: 10_000 });
  readonly circuit = new Circuit();

  constructor(
    private readonly log?: FastifyBaseLogger,
    /** Each request's outcome: its status once headers arrived, or 'error' (metrics). */
    private readonly observe?: (repo: string, status: number | 'error', seconds: number) => void,
  ) {}

  /**
   * Any status, body unread (the caller must consume or destroy it). Follows
   * redirects itself so that credentials never leave the upstream's origin.
   * Network failures and timeouts throw UPSTREAM_FAILED / UPSTREAM_TIMEOUT.
   */
  async fetchRaw(s: UpstreamSettings, url: string, o: UpstreamOptions = {}): Promise<RawReply> {
    if (this.circuit.isOpen(s.repo)) throw new AppError('UPSTREAM_FAILED', `upstream of ${s.repo} is failing; skipping it for now`);
    const origin = new URL(s.upstream).origin;
    let current = url;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      // An `authorization` passed in headers (a docker bearer token from FileRef.upstreamHeaders) counts as explicit.
      const { authorization: headerAuth, ...extra } = o.headers ?? {};
      const explicit = o.authorization ?? headerAuth;
      const headers: Record<string, string> = { 'user-agent': 'artifactapi', via: outgoingVia(), ...extra };
      if (o.accept) headers.accept = o.accept;
      if (o.etag) headers['if-none-match'] = o.etag;
      if (o.lastModified) headers['if-modified-since'] = o.lastModified;
      const auth = explicit ?? s.authorization;
      // Credentials (configured or a docker bearer token) go only to the origin they belong to, never after a redirect elsewhere.
      if (auth && new URL(current).origin === (explicit ? new URL(url).origin : origin)) headers.authorization = auth;
      const t0 = performance.now();
      let res;
      try {
        res = await this.send(s, current, o.method ?? 'GET', headers, o.body, o.signal);
      } catch (err) {
        this.circuit.failure(s.repo, s.maxFails, s.failTimeout);
        const mapped = mapNetworkError(err, current);
        this.observe?.(s.repo, 'error', (performance.now() - t0) / 1000);
        this.log?.warn({ repo: s.repo, upstream: withoutCredentials(current), err: mapped.message, ms: Math.round(performance.now() - t0) }, 'upstream request failed');
        throw mapped;
      }
      const status = res.statusCode ?? 0;
      this.observe?.(s.repo, status, (performance.now() - t0) / 1000);
      if (status >= 300 && status < 400 && status !== 304 && res.headers.location) {
        res.resume();
        current = new URL(String(res.headers.location), current).toString();
        continue;
      }
      if (status >= 500) this.circuit.failure(s.repo, s.maxFails, s.failTimeout);
      else this.circuit.success(s.repo);
      return { status, headers: flatHeaders(res.headers), body: this.logged(s.repo, current, status, t0, res), url: current };
    }
    throw new AppError('UPSTREAM_FAILED', `too many redirects from ${url}`);
  }

  /** 200 with a body, or 304; 404/410 throw UPSTREAM_NOT_FOUND, anything else UPSTREAM_FAILED. */
  async get(s: UpstreamSettings, url: string, o: UpstreamOptions = {}): Promise<UpstreamReply> {
    const r = await this.fetchRaw(s, url, o);
    if (r.status === 200 || r.status === 304 || (r.status >= 200 && r.status < 300 && o.method === 'HEAD')) {
      if (r.status === 304 || o.method === 'HEAD') {
        r.body.resume();
        return { status: r.status === 304 ? 304 : 200, headers: r.headers, body: null, url: r.url };
      }
      return { status: 200, headers: r.headers, body: r.body, url: r.url };
    }
    r.body.resume();
    if (r.status === 404 || r.status === 410) throw new AppError('UPSTREAM_NOT_FOUND', `not found upstream`);
    if (r.status === 401 || r.status === 403) throw new AppError('UPSTREAM_FAILED', `upstream refused access (${r.status})`);
    throw new AppError('UPSTREAM_FAILED', `upstream answered ${r.status}`);
  }

  /**
   * One request: headers within upstreamTimeout (connecting included); then the body fails with
   * UPSTREAM_TIMEOUT when, in any idleTimeout window, fewer than minRate x window bytes arrive
   * (with minRate 0: when nothing arrives), so an upstream that trickles cannot hold a fill open.
   */
  private send(s: UpstreamSettings, url: string, method: string, headers: Record<string, string>, body: Buffer | undefined,
    signal?: AbortSignal, retried = false): Promise<IncomingMessage> {
    const https = url.startsWith('https:');
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = (https ? httpsRequest : httpRequest)(url, { method, headers, agent: https ? this.https : this.http, signal });
      const headerTimer = setTimeout(() => req.destroy(new AppError('UPSTREAM_TIMEOUT', 'upstream did not answer in time', { url })), s.upstreamTimeout);
      req.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(headerTimer);
        // A pooled connection the upstream closed meanwhile: once more on a fresh one (GET/HEAD only).
        if (req.reusedSocket && err.code === 'ECONNRESET' && !retried) resolve(this.send(s, url, method, headers, body, signal, true));
        else reject(err);
      });
      req.on('response', (res) => {
        clearTimeout(headerTimer);
        watchRate(res, s.idleTimeout, s.minRate);
        resolve(res);
      });
      req.end(body);
    });
  }

  /** One log line per upstream request once its body is done (read, dropped or failed): repo, url, status, bytes, ms. */
  private logged(repo: string, url: string, status: number, t0: number, body: Readable): Readable {
    if (!this.log) return body;
    let bytes = 0;
    const counted = new Transform({ transform(chunk: Buffer, _enc, cb) { bytes += chunk.length; cb(null, chunk); } });
    let done = false;
    const log = () => {
      if (done) return;
      done = true;
      this.log!.info({ repo, upstream: withoutCredentials(url), status, bytes, ms: Math.round(performance.now() - t0) }, 'upstream request');
    };
    counted.once('end', log).once('close', log);
    pipeline(body, counted, () => {});
    return counted;
  }

  async close(): Promise<void> {
    this.http.destroy();
    this.https.destroy();
  }
}

/**
 * Fails `body` with UPSTREAM_TIMEOUT when a window of `windowMs` brings fewer than max(1, rate x window)
 * bytes off the socket, unless the body is full and waiting for its reader (our backpressure, not the upstream).
 */
function watchRate(body: IncomingMessage, windowMs: number, bytesPerSecond: number): void {
  const need = Math.max(1, Math.floor((bytesPerSecond * windowMs) / 1000));
  const socket = body.socket;
  let last = socket.bytesRead;
  const timer = setInterval(() => {
    const got = socket.bytesRead - last;
    last = socket.bytesRead;
    const waiting = body.isPaused() || body.readableLength >= body.readableHighWaterMark;
    if (got < need && !waiting && !body.complete) {
      body.destroy(new AppError('UPSTREAM_TIMEOUT', got === 0 ? 'upstream body went silent' : `upstream body slower than ${bytesPerSecond} B/s`));
    }
  }, windowMs);
  timer.unref();
  body.once('close', () => clearInterval(timer));
}

function mapNetworkError(err: unknown, url: string): AppError {
  if (err instanceof AppError) return err;
  if ((err as Error)?.name === 'AbortError') return new AppError('CLIENT_CLOSED', 'request aborted');
  return new AppError('UPSTREAM_FAILED', `upstream unreachable`, { url, cause: (err as Error)?.message });
}

/** A URL fit for the log: no userinfo, no secrets in the query (presigned redirects carry signatures there). */
function withoutCredentials(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  for (const k of [...u.searchParams.keys()]) if (/sig|token|key|auth|credential|password|secret/i.test(k)) u.searchParams.set(k, 'REDACTED');
  return u.toString();
}
