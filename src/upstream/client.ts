import { Agent, request, errors as undiciErrors } from 'undici';
import type { Readable } from 'node:stream';
import { AppError } from '../lib/errors.js';
import { Circuit } from './circuit.js';
import { outgoingVia } from './hops.js';

/** Upstream settings of one remote repo, with [remote] defaults applied (see repos/registry.ts). */
export interface UpstreamSettings {
  repo: string;
  upstream: string;
  upstreamTimeout: number;
  idleTimeout: number;
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

export class UpstreamClient {
  private readonly agents = new Map<string, Agent>();
  readonly circuit = new Circuit();

  private agent(s: UpstreamSettings): Agent {
    const key = `${s.upstreamTimeout}:${s.idleTimeout}`;
    let a = this.agents.get(key);
    if (!a) {
      a = new Agent({ headersTimeout: s.upstreamTimeout, bodyTimeout: s.idleTimeout, connectTimeout: s.upstreamTimeout, keepAliveTimeout: 10_000 });
      this.agents.set(key, a);
    }
    return a;
  }

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
      let res;
      try {
        res = await request(current, { method: o.method ?? 'GET', headers, dispatcher: this.agent(s), signal: o.signal });
      } catch (err) {
        this.circuit.failure(s.repo, s.maxFails, s.failTimeout);
        throw mapNetworkError(err, current);
      }
      if (res.statusCode >= 300 && res.statusCode < 400 && res.statusCode !== 304 && res.headers.location) {
        res.body.resume();
        current = new URL(String(res.headers.location), current).toString();
        continue;
      }
      if (res.statusCode >= 500) this.circuit.failure(s.repo, s.maxFails, s.failTimeout);
      else this.circuit.success(s.repo);
      return { status: res.statusCode, headers: flatHeaders(res.headers), body: res.body, url: current };
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

  async close(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.close()));
  }
}

function mapNetworkError(err: unknown, url: string): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.ConnectTimeoutError) {
    return new AppError('UPSTREAM_TIMEOUT', `upstream did not answer in time`, { url });
  }
  if ((err as Error)?.name === 'AbortError') return new AppError('CLIENT_CLOSED', 'request aborted');
  return new AppError('UPSTREAM_FAILED', `upstream unreachable`, { url, cause: (err as Error)?.message });
}
