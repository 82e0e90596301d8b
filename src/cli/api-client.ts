/** Talks to a running server's management API; errors become one-line messages. */
export class ApiClient {
  constructor(readonly baseUrl: string, private readonly token?: string) {}

  /** `--url` or ARTIFACTAPI_URL; `--token` or ARTIFACTAPI_TOKEN (an API token, sent as Bearer). */
  static from(url?: string, token?: string): ApiClient {
    return new ApiClient((url ?? process.env.ARTIFACTAPI_URL ?? 'http://127.0.0.1:8000').replace(/\/+$/, ''), token ?? (process.env.ARTIFACTAPI_TOKEN || undefined));
  }

  /** The Authorization header this client sends, if any. */
  get authorization(): string | undefined {
    return this.token ? `Bearer ${this.token}` : undefined;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
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
      const hint = res.status === 401 ? ' (give an API token: --token or ARTIFACTAPI_TOKEN)' : '';
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
