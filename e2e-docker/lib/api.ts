import { createHash } from 'node:crypto';
import { BASE, UPSTREAM_FOR_TESTS } from './env.js';

export const sha256hex = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

export interface Reply {
  status: number;
  headers: Headers;
  body: Buffer;
  json<T = any>(): T;
}

/** One HTTP request to artifactapi (path relative to ARTIFACTAPI_URL), body read whole. */
export async function http(method: string, path: string, o: { body?: Buffer | string | object; headers?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...o.headers };
  let body: Buffer | string | undefined;
  if (o.body !== undefined && !Buffer.isBuffer(o.body) && typeof o.body === 'object') {
    body = JSON.stringify(o.body);
    headers['content-type'] ??= 'application/json';
  } else {
    body = o.body as Buffer | string | undefined;
  }
  const res = await fetch(`${BASE}${path}`, { method, headers, body });
  const buf = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body: buf, json: () => JSON.parse(buf.toString('utf8')) };
}

export const get = (path: string, headers?: Record<string, string>) => http('GET', path, { headers });

/** Management API helpers; each throws with the server's answer when the status is not the expected one. */
export async function createRepo(def: Record<string, unknown>): Promise<Record<string, any>> {
  const r = await http('POST', '/api/v1/repositories', { body: def });
  if (r.status !== 201) throw new Error(`create ${JSON.stringify(def)}: ${r.status} ${r.body.toString()}`);
  return r.json();
}

export async function deleteRepo(name: string): Promise<void> {
  const r = await http('DELETE', `/api/v1/repositories/${name}`);
  if (r.status !== 204 && r.status !== 404) throw new Error(`delete ${name}: ${r.status} ${r.body.toString()}`);
}

/** Deletes repos in the order given (virtual ones first), ignoring ones already gone. */
export async function deleteRepos(names: string[]): Promise<void> {
  for (const n of names) await deleteRepo(n);
}

/** How many times the mock upstream served `path` (its /__hits counter). */
export async function upstreamHits(path: string): Promise<number> {
  const r = await fetch(`${UPSTREAM_FOR_TESTS}/__hits`);
  const hits = (await r.json()) as Record<string, number>;
  return hits[path] ?? 0;
}

/**
 * A user of the stack's own (the e2e stacks run with auth.anonymous = "admin", so anonymous may
 * create it) and an API token of it: clients that always send credentials (npm publish, twine)
 * must send real ones, since a made-up credential is a bad one.
 */
export async function clientCredentials(): Promise<{ user: string; password: string; token: string }> {
  const user = `e2e-${Math.random().toString(36).slice(2, 10)}`;
  const password = `pw-${Math.random().toString(36).slice(2)}-${Date.now()}`;
  const u = await http('POST', '/api/v1/users', { body: { name: user, password, admin: true } });
  if (u.status !== 201) throw new Error(`create user: ${u.status} ${u.body.toString()}`);
  const t = await http('POST', '/api/v1/tokens', { body: {}, headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` } });
  if (t.status !== 201) throw new Error(`create token: ${t.status} ${t.body.toString()}`);
  return { user, password, token: t.json().token };
}
