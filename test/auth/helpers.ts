import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { execa } from 'execa';
import { startServer, type TestServer } from '../helpers/server.js';

export const run = promisify(execFile);

/** A server with auth as shipped (`auth.anonymous = "read"` unless `flags` say otherwise), and the admin's header. */
export async function authServer(flags: Record<string, unknown> = {}, o: Parameters<typeof startServer>[1] = {}): Promise<TestServer & AuthTools> {
  const srv = await startServer({ 'auth.anonymous': 'read', ...flags }, o);
  const api = async (method: string, path: string, body?: unknown, auth: string | null = srv.adminAuth) => {
    const res = await fetch(`${srv.url}${path}`, {
      method,
      headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(auth ? { authorization: auth } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers };
  };
  const tools: AuthTools = {
    api,
    async user(name, password, grants = []) {
      const r = await api('POST', '/api/v1/users', { name, password });
      if (r.status !== 201) throw new Error(`user ${name}: ${r.status} ${JSON.stringify(r.json)}`);
      for (const [pattern, actions] of grants) {
        const g = await api('POST', '/api/v1/permissions', { subject: name, pattern, actions });
        if (g.status !== 201) throw new Error(`grant ${name}: ${g.status} ${JSON.stringify(g.json)}`);
      }
    },
    async token(user, password, body = {}) {
      const r = await api('POST', '/api/v1/tokens', body, basic(user, password));
      if (r.status !== 201) throw new Error(`token ${user}: ${r.status} ${JSON.stringify(r.json)}`);
      return r.json as { id: string; token: string };
    },
  };
  return Object.assign(srv, tools);
}

export interface AuthTools {
  api(method: string, path: string, body?: unknown, auth?: string | null): Promise<{ status: number; json: any; headers: Headers }>;
  /** Creates a user with `[pattern, actions]` grants. */
  user(name: string, password: string, grants?: [string, string[]][]): Promise<void>;
  /** An API token of `user` (made with its password). */
  token(user: string, password: string, body?: Record<string, unknown>): Promise<{ id: string; token: string }>;
}

export const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
export const bearer = (token: string) => `Bearer ${token}`;

/** `npm login` on a pseudo-terminal (script(1)): npm reads the password only from a TTY. Answers each prompt as it appears. */
export async function npmLogin(
  o: { registry: string; userconfig: string; cache: string; globalconfig: string }, user: string, password: string,
): Promise<{ exitCode: number | undefined; out: string }> {
  const cmd = ['npm', 'login', '--auth-type=legacy', '--userconfig', o.userconfig, '--cache', o.cache, '--registry', o.registry, '--loglevel=warn', '--update-notifier=false']
    .map((a) => `'${a}'`).join(' ');
  const child = execa('script', ['-qefc', cmd, '/dev/null'], { reject: false, env: { npm_config_globalconfig: o.globalconfig }, extendEnv: true, timeout: 60_000 });
  let seen = '';
  const answered = new Set<string>();
  child.stdout!.on('data', (d: Buffer) => {
    seen += d.toString();
    for (const [prompt, answer] of [['Username:', user], ['Password:', password]] as const) {
      if (seen.includes(prompt) && !answered.has(prompt)) {
        answered.add(prompt);
        child.stdin!.write(`${answer}\r`);
      }
    }
  });
  const r = await child;
  return { exitCode: r.exitCode, out: seen };
}
