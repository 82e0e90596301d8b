/**
 * The core configuration as tables: every key, its type and its default. Formats add their own
 * (FormatSpec: repo options and a `[<format>]` section); composeSchema() joins them, and
 * load.ts layers defaults < TOML file < ARTIFACTAPI_* env < flags over the result and rejects
 * unknown keys by dotted path. artifactapi.example.toml documents the same keys (a test keeps
 * the two in step).
 */
/** `trust`: true, false, or a list of addresses/CIDRs (fastify's trustProxy). */
export type KeyType = 'string' | 'number' | 'boolean' | 'duration' | 'size' | 'string[]' | 'trust';

export interface KeySpec {
  type: KeyType;
  default: unknown;
  doc: string;
  /**
   * A secret: may also be given as `<key>_file` (the file's contents, trailing newline trimmed) or
   * `<key>_env` (an environment variable's value); `_env` wins over `_file`, which wins over the
   * key itself. Never shown (`repo show`, the API) nor echoed in an error.
   */
  secret?: boolean;
  /** The value must be one of these words. */
  choices?: readonly string[];
  /**
   * A secret whose `_file` is not read into the value at load time but left as a path for its
   * user to read as bytes (a binary key); `_env` and the key itself are text.
   */
  rawFile?: boolean;
  /** Set on the `_file` / `_env` keys composeSchema() adds: the secret key they stand for. */
  secretOf?: string;
}

/** A table of keys: a config section, or the options a repo may set. */
export type KeySpecs = Record<string, KeySpec>;

export const ROOT_KEYS = {
  public_url: { type: 'string', default: '', doc: 'base URL written into documents; empty: from the request Host' },
  data_dir: { type: 'string', default: './data', doc: 'where artifactapi.db and cas/ live by default' },
} satisfies KeySpecs;

export const SECTIONS = {
  server: {
    host: { type: 'string', default: '0.0.0.0', doc: 'bind address' },
    port: { type: 'number', default: 8000, doc: 'listen port' },
    verify_on_read: { type: 'boolean', default: true, doc: 're-hash blobs while serving; abort and quarantine on mismatch' },
    log_level: { type: 'string', default: 'info', doc: 'pino level: trace, debug, info, warn, error, silent', choices: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] },
    shutdown_timeout: { type: 'duration', default: '30s', doc: 'on SIGTERM/SIGINT, how long in-flight transfers may take to finish' },
    workers: { type: 'number', default: 1, doc: 'worker processes of serve, restarted when they die; 0: serve in the one process, unsupervised' },
    headers_timeout: { type: 'duration', default: '30s', doc: 'a client must send its request headers within this' },
    request_timeout: { type: 'duration', default: '1h', doc: 'a client must send its whole request (uploads too) within this; 0: no limit' },
    keep_alive_timeout: { type: 'duration', default: '72s', doc: 'an idle keep-alive connection is closed after this' },
    max_connections: { type: 'number', default: 4096, doc: 'open client connections; more are refused' },
    trust_proxy: { type: 'trust', default: false, doc: 'believe X-Forwarded-For/-Proto/-Host: false, true (any peer), or the proxy addresses/CIDRs' },
  },
  database: {
    url: { type: 'string', default: '', doc: 'sqlite://PATH or postgres://user:pass@host/db; empty: sqlite in data_dir', secret: true },
    pool_size: { type: 'number', default: 10, doc: 'postgres connection pool size' },
    busy_timeout: { type: 'duration', default: '5s', doc: 'sqlite: how long a write waits for a lock held by another process, then 503 with Retry-After' },
  },
  storage: {
    type: { type: 'string', default: 'fs', doc: 'fs or s3', choices: ['fs', 's3'] },
    path: { type: 'string', default: '', doc: 'fs: CAS root; empty: data_dir/cas' },
    endpoint: { type: 'string', default: '', doc: 's3 endpoint URL (MinIO)' },
    bucket: { type: 'string', default: 'artifactapi', doc: 's3 bucket' },
    region: { type: 'string', default: 'us-east-1', doc: 's3 region' },
    access_key: { type: 'string', default: '', doc: 's3 access key' },
    secret_key: { type: 'string', default: '', doc: 's3 secret key', secret: true },
    force_path_style: { type: 'boolean', default: true, doc: 's3 path-style addressing (MinIO)' },
  },
  redis: {
    url: { type: 'string', default: '', doc: 'redis://host:6379 for shared locks and single-flight; empty: in-process', secret: true },
  },
  remote: {
    metadata_ttl: { type: 'duration', default: '5m', doc: 'how long mutable metadata is served before revalidation' },
    negative_ttl: { type: 'duration', default: '1m', doc: 'how long an upstream 404 is remembered' },
    upstream_timeout: { type: 'duration', default: '5s', doc: 'wait for upstream response headers' },
    idle_timeout: { type: 'duration', default: '30s', doc: 'max silence within an upstream body; also the window min_rate is checked over' },
    min_rate: { type: 'size', default: '1KiB', doc: 'bytes per second an upstream body must average over every idle_timeout window; 0: only silence counts' },
    fill_timeout: { type: 'duration', default: '1h', doc: 'total deadline of a cache fill; the client gets an error and nothing is cached' },
    max_fails: { type: 'number', default: 3, doc: 'consecutive upstream failures that open the circuit' },
    fail_timeout: { type: 'duration', default: '30s', doc: 'how long an open circuit skips the upstream' },
  },
  gc: {
    grace: { type: 'duration', default: '1h', doc: 'blobs touched more recently than this are never reaped' },
  },
  uploads: {
    session_ttl: { type: 'duration', default: '24h', doc: 'abandoned upload sessions expire after this' },
    max_size: { type: 'size', default: '0', doc: 'largest accepted upload; 0: unlimited' },
    max_sessions: { type: 'number', default: 256, doc: 'docker: unfinished upload sessions per repo; more are refused with 429; 0: unlimited' },
  },
  limits: {
    metadata_body: { type: 'size', default: '4MiB', doc: 'cap on metadata documents (JSON bodies, indexes, manifests)' },
    publish_body: { type: 'size', default: '512MiB', doc: 'cap on JSON publish bodies that embed artifacts (npm publish)' },
    unpacked_size: { type: 'size', default: '2GiB', doc: 'cap on the unpacked size of an archive the server inspects (npm tarballs)' },
  },
  audit: {
    retention: { type: 'duration', default: '90d', doc: 'audit entries older than this are pruned by gc; 0: keep forever' },
  },
  metrics: {
    public: { type: 'boolean', default: false, doc: 'serve GET /metrics to anyone; false: admin only' },
  },
  auth: {
    anonymous: { type: 'string', default: 'read', choices: ['none', 'read', 'write', 'admin'], doc: 'what a request without credentials may do where a repo does not say otherwise: none, read, write (a trusted network only: everything but admin) or admin (everything, the management API included: a single-user host or a throwaway test stack)' },
    token_key: { type: 'string', default: '', secret: true, rawFile: true, doc: 'key that signs docker Bearer tokens (32+ bytes); token_key_file is read as bytes; none set: data_dir/token.key, made on first start (give every instance the same key)' },
    docker_token_ttl: { type: 'duration', default: '5m', doc: 'lifetime of a docker Bearer token from /v2/token' },
    login_slow_after: { type: 'number', default: 3, doc: 'failed logins from one address within login_window before each answer is delayed' },
    login_max_failures: { type: 'number', default: 10, doc: 'failed logins from one address within login_window before it is refused with 429' },
    login_window: { type: 'duration', default: '5m', doc: 'how long failed logins from one address are remembered' },
  },
} satisfies Record<string, KeySpecs>;

/**
 * Keys every [[repos]] entry (or the API) may set, whatever its format; a format adds its own
 * (FormatSpec.options). Remote keys override [remote].
 */
export const REPO_KEYS = {
  name: { type: 'string', default: '', doc: 'repo name' },
  format: { type: 'string', default: '', doc: 'generic, docker, helm, pypi, npm, rpm, alpine, puppet, terraform, goproxy' },
  kind: { type: 'string', default: '', doc: 'local, remote or virtual' },
  upstream: { type: 'string', default: '', doc: 'remote: upstream URL' },
  members: { type: 'string[]', default: [], doc: 'virtual: member repos in order' },
  metadata_ttl: { type: 'duration', default: undefined, doc: 'overrides [remote]' },
  negative_ttl: { type: 'duration', default: undefined, doc: 'overrides [remote]' },
  upstream_timeout: { type: 'duration', default: undefined, doc: 'overrides [remote]' },
  idle_timeout: { type: 'duration', default: undefined, doc: 'overrides [remote]' },
  min_rate: { type: 'size', default: undefined, doc: 'overrides [remote]' },
  fill_timeout: { type: 'duration', default: undefined, doc: 'overrides [remote]' },
  username: { type: 'string', default: undefined, doc: 'upstream credentials' },
  password: { type: 'string', default: undefined, doc: 'upstream credentials', secret: true },
  max_cache_size: { type: 'size', default: undefined, doc: 'remote: evict least recently used cached files above this (gc)' },
  default_local: { type: 'string', default: undefined, doc: 'virtual: the local member that receives writes' },
  allow_shadowed: { type: 'string[]', default: undefined, doc: 'virtual: package names remote members may serve even when a local member has them' },
  anonymous: { type: 'string', default: undefined, choices: ['none', 'read', 'write'], doc: 'what requests without credentials may do on this repo (none, read, write); overrides auth.anonymous' },
} satisfies KeySpecs;

export const FORMATS = ['generic', 'docker', 'helm', 'pypi', 'npm', 'rpm', 'alpine', 'puppet', 'terraform', 'goproxy'] as const;
export type FormatName = (typeof FORMATS)[number];

export type SectionValues<S> = { -readonly [K in keyof S]: S[K] extends { type: 'number' | 'duration' | 'size' } ? number
  : S[K] extends { type: 'boolean' } ? boolean : S[K] extends { type: 'string[]' } ? string[] : S[K] extends { type: 'trust' } ? boolean | string[] : string };

export interface RepoConfig {
  name: string;
  format: string;
  kind: string;
  upstream?: string;
  members?: string[];
  options: Record<string, unknown>;
}

export type Config = SectionValues<typeof ROOT_KEYS> & { [S in keyof typeof SECTIONS]: SectionValues<(typeof SECTIONS)[S]> } & {
  /** Each format's own `[<format>]` section (FormatSpec.config), defaults filled in; read it with formatConfig(). */
  readonly [F in FormatName]: Readonly<Record<string, unknown>>;
} & {
  repos: RepoConfig[];
  /** The file the config came from, for error messages. */
  source?: string;
};

/**
 * What a format declares about its configuration (FormatHandler carries it): the repo options
 * only its repos take, and its `[<name>]` config section. The core composes both into the schema,
 * so TOML, ARTIFACTAPI_<FORMAT>_<KEY>, flags, `repo add --set` and the API validate them.
 */
export interface FormatSpec {
  readonly name: string;
  /** Repo options of this format, over REPO_KEYS (which it may not redefine). */
  readonly options?: KeySpecs;
  /** The `[<name>]` section: keys with defaults. */
  readonly config?: KeySpecs;
}

/** A format's own section, typed by its spec: `formatConfig(svc.config, 'docker', DOCKER_CONFIG).default_repo`. */
export function formatConfig<S extends KeySpecs>(config: Config, name: FormatName, _spec: S): Readonly<SectionValues<S>> {
  return (config[name] ?? {}) as SectionValues<S>;
}

/** Adds `<key>_file` and `<key>_env` next to every secret key of a table. */
export function withSecretKeys(keys: KeySpecs): KeySpecs {
  const out: KeySpecs = {};
  for (const [k, spec] of Object.entries(keys)) {
    out[k] = spec;
    if (!spec.secret) continue;
    out[`${k}_file`] = { type: 'string', default: undefined, doc: `read ${k} from this file (trailing newline trimmed)`, secretOf: k };
    out[`${k}_env`] = { type: 'string', default: undefined, doc: `read ${k} from this environment variable`, secretOf: k };
  }
  return out;
}

/** The whole schema: core sections and keys with every format's joined in. */
export interface Schema {
  /** Core sections and format sections, secrets' `_file`/`_env` keys included. */
  readonly sections: Readonly<Record<string, KeySpecs>>;
  /** Formats with a handler or a spec, by name. */
  readonly formats: readonly string[];
  /** Keys a repo of this format may set (core and the format's, `_file`/`_env` included). */
  repoKeys(format: string): KeySpecs;
  /** The format that declares a repo option, for "that is a docker option" hints. */
  ownerOf(key: string): string | undefined;
  /** Secret repo options of this format (the keys themselves, not their `_file`/`_env`). */
  secretKeys(format: string): string[];
}

export function composeSchema(formats: readonly FormatSpec[]): Schema {
  const sections: Record<string, KeySpecs> = {};
  for (const [name, keys] of Object.entries(SECTIONS)) sections[name] = withSecretKeys(keys);
  const core = withSecretKeys(REPO_KEYS);
  const byFormat = new Map<string, KeySpecs>();
  const owner = new Map<string, string>();
  for (const f of formats) {
    if (f.name in sections || f.name in ROOT_KEYS) throw new Error(`format ${f.name}: its section name is a core section`);
    sections[f.name] = withSecretKeys(f.config ?? {});
    const own = withSecretKeys(f.options ?? {});
    for (const k of Object.keys(own)) {
      if (k in core) throw new Error(`format ${f.name}: repo option "${k}" is a core option`);
      if (!owner.has(k)) owner.set(k, f.name);
    }
    byFormat.set(f.name, { ...core, ...own });
  }
  return {
    sections,
    formats: formats.map((f) => f.name),
    repoKeys: (format) => byFormat.get(format) ?? core,
    ownerOf: (key) => owner.get(key),
    secretKeys: (format) => Object.entries(byFormat.get(format) ?? core).filter(([, s]) => s.secret).map(([k]) => k),
  };
}
