import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../config/load.js';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * On the server's own host with no token given: the first-start admin password from the data
 * dir (`data_dir` of ./artifactapi.toml, ARTIFACTAPI_CONFIG or ARTIFACTAPI_DATA_DIR, default ./data),
 * as `npm start` leaves it. Only for a loopback URL, and only when this user may read the file.
 */
function hostAdmin(baseUrl: string): { header: string; file: string } | undefined {
  try {
    if (!LOOPBACK.has(new URL(baseUrl).hostname)) return undefined;
    const file = join(loadConfig().data_dir, 'admin.password');
    const password = readFileSync(file, 'utf8').trim();
    return password ? { header: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`, file } : undefined;
  } catch {
    return undefined;
  }
}

/** Talks to a running server's management API; errors become one-line messages. */
export class ApiClient {
  private readonly admin?: { header: string; file: string };

  constructor(readonly baseUrl: string, private readonly token?: string) {
    if (!token) this.admin = hostAdmin(baseUrl);
  }

  /** `--url` or ARTIFACTAPI_URL; `--token` or ARTIFACTAPI_TOKEN (an API token, sent as Bearer); else, on the host, the admin password file. */
  static from(url?: string, token?: string): ApiClient {
    return new ApiClient((url ?? process.env.ARTIFACTAPI_URL ?? 'http://127.0.0.1:8000').replace(/\/+$/, ''), token ?? (process.env.ARTIFACTAPI_TOKEN || undefined));
  }

  /** The Authorization header this client sends, if any. */
  get authorization(): string | undefined {
    return this.token ? `Bearer ${this.token}` : this.admin?.header;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(this.authorization ? { authorization: this.authorization } : {}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new Error(`cannot reach ${this.baseUrl} (${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message}); is \`artifactapi serve\` running? (--url or ARTIFACTAPI_URL)`);
    }
    const text = await res.text();
    const json = text ? safeJson(text) : undefined;
    if (!res.ok) {
      const e = (json as { error?: { message?: string } | string })?.error;
      const hint = res.status !== 401 ? ''
        : this.admin ? ` (the admin password in ${this.admin.file} was refused: give an API token with --token or ARTIFACTAPI_TOKEN)`
          : ' (give an API token: --token or ARTIFACTAPI_TOKEN; on the server\'s host, run it where the data dir\'s admin.password is readable, e.g. next to ./data)';
      throw new Error(`${typeof e === 'string' ? e : e?.message ?? `${method} ${path}: HTTP ${res.status}`}${hint}`);
    }
    return json as T;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
