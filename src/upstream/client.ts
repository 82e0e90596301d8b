import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { AppError } from '../lib/errors.js';
import { Circuit } from './circuit.js';

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
  method?: 'GET' | 'HEAD';
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
      const headers: Record<string, string> = { 'user-agent': 'artifactapi', via: '1.1 artifactapi', ...extra };
      if (o.accept) headers.accept = o.accept;
      if (o.etag) headers['if-none-match'] = o.etag;
      if (o.lastModified) headers['if-modified-since'] = o.lastModified;
      const auth = explicit ?? s.authorization;
      // Credentials (configured or a docker bearer token) go only to the origin they belong to, never after a redirect elsewhere.
      if (auth && new URL(current).origin === (explicit ? new URL(url).origin : origin)) headers.authorization = auth;
      let res;
      try {
        res = await this.send(s, current, o.method ?? 'GET', headers, o.signal);
      } catch (err) {
        this.circuit.failure(s.repo, s.maxFails, s.failTimeout);
        throw mapNetworkError(err, current);
      }
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && status !== 304 && res.headers.location) {
        res.resume();
        current = new URL(String(res.headers.location), current).toString();
        continue;
      }
      if (status >= 500) this.circuit.failure(s.repo, s.maxFails, s.failTimeout);
      else this.circuit.success(s.repo);
      return { status, headers: flatHeaders(res.headers), body: res, url: current };
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
  private send(s: UpstreamSettings, url: string, method: string, headers: Record<string, string>, signal?: AbortSignal, retried = false): Promise<IncomingMessage> {
    const https = url.startsWith('https:');
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = (https ? httpsRequest : httpRequest)(url, { method, headers, agent: https ? this.https : this.http, signal });
      const headerTimer = setTimeout(() => req.destroy(new AppError('UPSTREAM_TIMEOUT', 'upstream did not answer in time', { url })), s.upstreamTimeout);
      req.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(headerTimer);
        // A pooled connection the upstream closed meanwhile: once more on a fresh one (GET/HEAD only).
        if (req.reusedSocket && err.code === 'ECONNRESET' && !retried) resolve(this.send(s, url, method, headers, signal, true));
        else reject(err);
      });
      req.on('response', (res) => {
        clearTimeout(headerTimer);
        watchRate(res, s.idleTimeout, s.minRate);
        resolve(res);
      });
      req.end();
    });
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
