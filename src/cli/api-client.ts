/** Talks to a running server's management API; errors become one-line messages. */
export class ApiClient {
  constructor(readonly baseUrl: string) {}

  static from(url?: string): ApiClient {
    return new ApiClient((url ?? process.env.ARTIFACTAPI_URL ?? 'http://127.0.0.1:8000').replace(/\/+$/, ''));
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new Error(`cannot reach ${this.baseUrl} (${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message}); is \`artifactapi serve\` running? (--url or ARTIFACTAPI_URL)`);
    }
    const text = await res.text();
    const json = text ? safeJson(text) : undefined;
    if (!res.ok) {
      const e = (json as { error?: { message?: string } | string })?.error;
      throw new Error(typeof e === 'string' ? e : e?.message ?? `${method} ${path}: HTTP ${res.status}`);
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
