import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { composeSchema } from '../../src/config/schema.js';

const dir = mkdtempSync(join(tmpdir(), 'artifactapi-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
/** Writes a TOML file and returns its path. */
const toml = (text: string) => {
  const f = join(dir, `c${++n}.toml`);
  writeFileSync(f, text);
  return f;
};
const load = (o: { file?: string; env?: Record<string, string>; flags?: Record<string, unknown> }) => loadConfig({ noDefaultFile: true, env: {}, ...o });
/** The ConfigError message loadConfig throws. */
const errorOf = (o: Parameters<typeof load>[0]): string => {
  try {
    load(o);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
};

describe('precedence: defaults < file < ARTIFACTAPI_<SECTION>_<KEY> < flags', () => {
  const file = toml('[server]\nport = 9001\nhost = "127.0.0.2"\n[remote]\nmetadata_ttl = "10m"\nnegative_ttl = "2m"\n[gc]\ngrace = "2h"\n');

  it('defaults when nothing is given', () => {
    const c = load({});
    expect(c.server.port).toBe(8000);
    expect(c.server.host).toBe('0.0.0.0');
    expect(c.remote.metadata_ttl).toBe(5 * 60_000);
    expect(c.data_dir).toBe(resolve('./data'));
    expect(c.database.url).toBe(`sqlite://${resolve('./data/artifactapi.db')}`);
    expect(c.storage.path).toBe(resolve('./data/cas'));
    expect(c.source).toBeUndefined();
  });

  it('the file beats defaults, env beats the file, flags beat env', () => {
    const fromFile = load({ file });
    expect(fromFile.server.port).toBe(9001);
    expect(fromFile.remote.metadata_ttl).toBe(10 * 60_000);
    expect(fromFile.gc.grace).toBe(2 * 3_600_000);
    expect(fromFile.source).toBe(resolve(file));

    const env = { ARTIFACTAPI_SERVER_PORT: '9002', ARTIFACTAPI_REMOTE_METADATA_TTL: '30s', ARTIFACTAPI_SERVER_VERIFY_ON_READ: 'false' };
    const fromEnv = load({ file, env });
    expect(fromEnv.server.port).toBe(9002);
    expect(fromEnv.remote.metadata_ttl).toBe(30_000);
    expect(fromEnv.server.verify_on_read).toBe(false);
    expect(fromEnv.remote.negative_ttl).toBe(2 * 60_000); // file value where env says nothing
    expect(fromEnv.server.host).toBe('127.0.0.2');

    const fromFlags = load({ file, env, flags: { 'server.port': '9003', 'server.host': undefined } });
    expect(fromFlags.server.port).toBe(9003);
    expect(fromFlags.server.host).toBe('127.0.0.2'); // an absent flag changes nothing
    expect(fromFlags.remote.metadata_ttl).toBe(30_000);
  });

  it('ARTIFACTAPI_PORT, ARTIFACTAPI_HOST and ARTIFACTAPI_DATA_DIR are aliases; data_dir moves the derived paths', () => {
    const c = load({ file, env: { ARTIFACTAPI_PORT: '9100', ARTIFACTAPI_HOST: '127.0.0.9', ARTIFACTAPI_DATA_DIR: join(dir, 'd') } });
    expect(c.server.port).toBe(9100);
    expect(c.server.host).toBe('127.0.0.9');
    expect(c.data_dir).toBe(join(dir, 'd'));
    expect(c.database.url).toBe(`sqlite://${join(dir, 'd', 'artifactapi.db')}`);
    expect(c.storage.path).toBe(join(dir, 'd', 'cas'));
    // flags still win over the alias
    expect(load({ env: { ARTIFACTAPI_PORT: '9100', ARTIFACTAPI_DATA_DIR: '/x' }, flags: { 'server.port': 9200, data_dir: join(dir, 'f') } })).toMatchObject({ server: { port: 9200 }, data_dir: join(dir, 'f') });
  });

  it('ARTIFACTAPI_CONFIG names the file when --config is absent; an empty env value is ignored', () => {
    expect(load({ env: { ARTIFACTAPI_CONFIG: file, ARTIFACTAPI_SERVER_PORT: '' } }).server.port).toBe(9001);
  });

  it('the result is frozen', () => {
    const c = load({ file });
    expect(Object.isFrozen(c.server)).toBe(true);
    expect(() => ((c.server as { port: number }).port = 1)).toThrow();
  });
});

describe('durations and sizes', () => {
  it('parse every documented unit', () => {
    const c = load({ file: toml('[remote]\nmetadata_ttl = "500ms"\nnegative_ttl = "30s"\nupstream_timeout = "5m"\nidle_timeout = "1h"\nfill_timeout = "7d"\n[limits]\nmetadata_body = "4MiB"\npublish_body = "10GB"\nunpacked_size = "1GiB"\n[uploads]\nmax_size = "512"\n') });
    expect(c.remote).toMatchObject({ metadata_ttl: 500, negative_ttl: 30_000, upstream_timeout: 300_000, idle_timeout: 3_600_000, fill_timeout: 7 * 86_400_000 });
    expect(c.limits).toEqual({ metadata_body: 4 * 1024 * 1024, publish_body: 10_000_000_000, unpacked_size: 1024 ** 3 });
    expect(c.uploads.max_size).toBe(512);
  });

  it('in env vars and flags too', () => {
    const c = load({ env: { ARTIFACTAPI_GC_GRACE: '90s', ARTIFACTAPI_LIMITS_METADATA_BODY: '1KiB' }, flags: { 'uploads.max_size': '2GiB' } });
    expect(c.gc.grace).toBe(90_000);
    expect(c.limits.metadata_body).toBe(1024);
    expect(c.uploads.max_size).toBe(2 * 1024 ** 3);
  });

  it('a bad duration or size names the key and the file', () => {
    const f = toml('[gc]\ngrace = "an hour"\n');
    expect(errorOf({ file: f })).toBe(`${f}: gc.grace: expected a duration like "30s", got "an hour"`);
    const g = toml('[limits]\nmetadata_body = "4 megs"\n');
    expect(errorOf({ file: g })).toBe(`${g}: limits.metadata_body: expected a size like "4MiB", got "4 megs"`);
  });

  it('a bad env value names the variable and the key', () => {
    expect(errorOf({ env: { ARTIFACTAPI_REMOTE_UPSTREAM_TIMEOUT: 'soon' } })).toBe('environment ARTIFACTAPI_REMOTE_UPSTREAM_TIMEOUT: remote.upstream_timeout: expected a duration like "30s", got "soon"');
    expect(errorOf({ env: { ARTIFACTAPI_PORT: 'eighty' } })).toBe('environment ARTIFACTAPI_PORT: server.port: expected a number, got "eighty"');
    expect(errorOf({ flags: { 'server.port': 'x' } })).toBe('command line: server.port: expected a number, got "x"');
  });
});

describe('errors name the dotted key and the file', () => {
  it('unknown root key, unknown section key, unknown section, nested table', () => {
    const a = toml('publc_url = "x"\n');
    expect(errorOf({ file: a })).toBe(`${a}: unknown key "publc_url"`);
    const b = toml('[server]\nprot = 1\n');
    expect(errorOf({ file: b })).toBe(`${b}: unknown key "server.prot"`);
    const c = toml('[sever]\nport = 1\n');
    expect(errorOf({ file: c })).toBe(`${c}: unknown key "sever"`);
    const d = toml('[server.tls]\ncert = "x"\n');
    expect(errorOf({ file: d })).toBe(`${d}: unknown key "server.tls"`);
  });

  it('reports every bad key of a file in one line', () => {
    const f = toml('[server]\nprot = 1\nport = "x"\n[gc]\ngrace = "later"\n');
    const msg = errorOf({ file: f });
    expect(msg.split('\n')).toHaveLength(1);
    expect(msg).toBe(`${f}: unknown key "server.prot"; server.port: expected a number, got "x"; gc.grace: expected a duration like "30s", got "later"`);
  });

  it('wrong types and words', () => {
    const f = toml('[server]\nverify_on_read = "sometimes"\nlog_level = "loud"\n[storage]\ntype = "ftp"\n');
    expect(errorOf({ file: f })).toBe(`${f}: server.verify_on_read: expected true or false, got "sometimes"; server.log_level: expected one of trace, debug, info, warn, error, fatal, silent, got "loud"; storage.type: expected one of fs, s3, got "ftp"`);
  });

  it('[[repos]] entries: unknown keys, bad values, names, formats, kinds, duplicates', () => {
    const f = toml([
      '[[repos]]', 'name = "ok"', 'format = "generic"', 'kind = "local"',
      '[[repos]]', 'name = "r"', 'format = "generic"', 'kind = "remote"', 'upstream = "http://x/"', 'metadata_tll = "5m"', 'negative_ttl = "soon"',
      '[[repos]]', 'name = "api"', 'format = "generic"', 'kind = "local"',
      '[[repos]]', 'name = "z"', 'format = "maven"', 'kind = "local"',
      '[[repos]]', 'name = "y"', 'format = "generic"', 'kind = "proxy"',
      '[[repos]]', 'name = "ok"', 'format = "generic"', 'kind = "local"',
      '[[repos]]', 'format = "generic"', 'kind = "local"',
    ].join('\n'));
    expect(errorOf({ file: f })).toBe(`${f}: ` + [
      'unknown key "repos[1].metadata_tll"',
      'repos[1].negative_ttl: expected a duration like "30s", got "soon"',
      'repos[2].name: "api" is a reserved name',
      'repos[3].format: unknown format "maven" (one of: generic, docker, helm, pypi, npm, rpm, alpine, puppet, terraform, goproxy)',
      'repos[4].kind: expected local, remote or virtual, got "proxy"',
      'repos[5].name: "ok" is declared twice (also repos[0])',
      '"repos[6].name" is required',
    ].join('; '));
  });

  it('a valid [[repos]] entry keeps its options coerced', () => {
    const c = load({ file: toml('[[repos]]\nname = "m"\nformat = "generic"\nkind = "remote"\nupstream = "http://127.0.0.1:1/"\nmetadata_ttl = "10m"\nmax_cache_size = "1GiB"\nmutable = ["**/*.json"]\n') });
    expect(c.repos).toEqual([{ name: 'm', format: 'generic', kind: 'remote', upstream: 'http://127.0.0.1:1/', options: { metadata_ttl: 600_000, max_cache_size: 1024 ** 3, mutable: ['**/*.json'] } }]);
  });

  it('bad TOML names the file and the position, in one line', () => {
    const f = toml('[server]\nport = = 8000\n');
    const msg = errorOf({ file: f });
    expect(msg.split('\n')).toHaveLength(1);
    expect(msg).toMatch(new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: invalid TOML at line 2, column 8: invalid value$`));
  });

  it('a missing config file names it', () => {
    expect(errorOf({ file: join(dir, 'absent.toml') })).toBe(`${join(dir, 'absent.toml')}: cannot read config file (ENOENT)`);
  });
});

describe('format sections and repo options come from the formats', () => {
  it('[docker] is docker\'s own section: file, ARTIFACTAPI_DOCKER_* env and flags set it', () => {
    const f = toml('[docker]\ndefault_repo = "mirror"\nuntagged_age = "2d"\n[terraform]\ndefault_repo = "tf"\n');
    const c = load({ file: f });
    expect(c.docker).toEqual({ default_repo: 'mirror', untagged_age: 2 * 86_400_000 });
    expect(c.terraform).toEqual({ default_repo: 'tf' });
    expect(load({ file: f, env: { ARTIFACTAPI_DOCKER_UNTAGGED_AGE: '1h' }, flags: { 'docker.default_repo': 'other' } }).docker)
      .toEqual({ default_repo: 'other', untagged_age: 3_600_000 });
    expect(load({}).docker).toEqual({ default_repo: '', untagged_age: 86_400_000 });
  });

  it('a format section key that does not exist, a format without a section, and the moved gc.untagged_age', () => {
    const f = toml('[docker]\ndefault_rep = "x"\n[puppet]\nx = 1\n[gc]\nuntagged_age = "1d"\n');
    expect(errorOf({ file: f })).toBe(`${f}: unknown key "docker.default_rep"; unknown key "puppet.x"; unknown key "gc.untagged_age" (now docker.untagged_age)`);
    expect(errorOf({ env: { ARTIFACTAPI_DOCKER_UNTAGGED_AGE: 'later' } })).toBe('environment ARTIFACTAPI_DOCKER_UNTAGGED_AGE: docker.untagged_age: expected a duration like "30s", got "later"');
  });

  it('[[repos]]: a format\'s own options are taken by its repos only; the error says whose key it is', () => {
    const ok = load({ file: toml([
      '[[repos]]', 'name = "el9"', 'format = "rpm"', 'kind = "local"', 'gpg_key_file = "/k.asc"', 'gpg_passphrase_env = "PASS"',
      '[[repos]]', 'name = "hub"', 'format = "docker"', 'kind = "remote"', 'upstream = "https://mirror.example/"', 'docker_hub = true',
    ].join('\n')) });
    expect(ok.repos.map((r) => r.options)).toEqual([{ gpg_key_file: '/k.asc', gpg_passphrase_env: 'PASS' }, { docker_hub: true }]);
    const f = toml([
      '[[repos]]', 'name = "g"', 'format = "generic"', 'kind = "local"', 'gpg_key_file = "/k.asc"',
      '[[repos]]', 'name = "d"', 'format = "docker"', 'kind = "remote"', 'upstream = "https://x/"', 'docker_hub = "yes"', 'mutable = ["a"]',
      '[[repos]]', 'name = "m"', 'format = "maven"', 'kind = "local"', 'signing_key_env = "K"',
    ].join('\n'));
    expect(errorOf({ file: f })).toBe(`${f}: ` + [
      'unknown key "repos[0].gpg_key_file" (a key of rpm repos, not generic)',
      'repos[1].docker_hub: expected true or false, got "yes"',
      'unknown key "repos[1].mutable" (a key of generic repos, not docker)',
      'repos[2].format: unknown format "maven" (one of: generic, docker, helm, pypi, npm, rpm, alpine, puppet, terraform, goproxy)',
    ].join('; '));
  });

  it('terraform declares [terraform] and the gpg secrets it shares with rpm; auth is a core section', () => {
    const c = load({ file: toml([
      '[terraform]', 'default_repo = "tf"', '[auth]', 'anonymous = "none"',
      '[[repos]]', 'name = "tf"', 'format = "terraform"', 'kind = "local"', 'gpg_key_env = "TF_KEY"', 'gpg_passphrase_file = "/run/tf.pass"', 'anonymous = "read"',
    ].join('\n')) });
    expect(c.terraform).toEqual({ default_repo: 'tf' });
    expect(c.auth.anonymous).toBe('none');
    expect(c.repos[0].options).toEqual({ gpg_key_env: 'TF_KEY', gpg_passphrase_file: '/run/tf.pass', anonymous: 'read' });
    const f = toml(['[auth]', 'anonymous = "everyone"', '[[repos]]', 'name = "tf"', 'format = "terraform"', 'kind = "local"', 'anonymous = "admin"', 'signing_key = "k"'].join('\n'));
    expect(errorOf({ file: f })).toBe(`${f}: auth.anonymous: expected one of none, read, write, admin, got "everyone"; `
      + 'repos[0].anonymous: expected one of none, read, write, got "admin"; unknown key "repos[0].signing_key" (a key of alpine repos, not terraform)');
  });

  it('auth.token_key_file stays a path (auth reads its bytes) and wins over token_key; token_key_env wins over both', () => {
    expect(load({ flags: { 'auth.token_key_file': '/k', 'auth.token_key': 'inline' } }).auth).toMatchObject({ token_key_file: '/k' });
    expect(load({ flags: { 'auth.token_key_file': '/k', 'auth.token_key': 'inline' } }).auth.token_key).toBeUndefined();
    const c = load({ flags: { 'auth.token_key_file': '/k', 'auth.token_key_env': 'K' }, env: { K: 'from-env' } });
    expect(c.auth.token_key).toBe('from-env');
    expect(c.auth).not.toHaveProperty('token_key_file');
  });

  it('a format yet to come declares its options and section the same way (composeSchema)', () => {
    const schema = composeSchema([{
      name: 'goproxy',
      options: { gonosumdb: { type: 'string[]', default: undefined, doc: 'x' }, token: { type: 'string', default: undefined, doc: 'x', secret: true } },
      config: { sumdb: { type: 'string', default: 'sum.golang.org', doc: 'x' } },
    }]);
    const f = toml('[goproxy]\nsumdb = "off"\n[[repos]]\nname = "go"\nformat = "goproxy"\nkind = "remote"\nupstream = "https://proxy.golang.org"\ngonosumdb = ["corp.example"]\ntoken_env = "GO_TOKEN"\n');
    const c = loadConfig({ noDefaultFile: true, env: {}, file: f, schema });
    expect(c.goproxy).toEqual({ sumdb: 'off' });
    expect(c.repos[0].options).toEqual({ gonosumdb: ['corp.example'], token_env: 'GO_TOKEN' });
    expect(schema.secretKeys('goproxy')).toEqual(['password', 'token']);
    const g = toml('[goproxy]\nsumdb = 1\n[[repos]]\nname = "go"\nformat = "goproxy"\nkind = "local"\ntokn = "x"\n');
    expect(() => loadConfig({ noDefaultFile: true, env: {}, file: g, schema })).toThrow(`${g}: goproxy.sumdb: expected a string, got 1; unknown key "repos[0].tokn"`);
    expect(() => composeSchema([{ name: 'x', options: { upstream: { type: 'string', default: undefined, doc: '' } } }])).toThrow('format x: repo option "upstream" is a core option');
    expect(() => composeSchema([{ name: 'server' }])).toThrow('format server: its section name is a core section');
  });
});

describe('secrets in sections: X, X_file, X_env', () => {
  it('X_file reads the file (trailing newline trimmed), X_env the variable; the _file/_env keys are gone from the result', () => {
    const secret = join(dir, 's3-secret');
    writeFileSync(secret, 'from-the-file\n');
    const c = load({ file: toml(`[storage]\nsecret_key_file = "${secret}"\n[redis]\nurl_env = "REDIS_URL"\n`), env: { REDIS_URL: 'redis://:pw@127.0.0.1:1' } });
    expect(c.storage.secret_key).toBe('from-the-file');
    expect(c.redis.url).toBe('redis://:pw@127.0.0.1:1');
    expect(Object.keys(c.storage)).not.toContain('secret_key_file');
    // ARTIFACTAPI_<SECTION>_<KEY>_FILE works as any other key, and _env beats _file beats the value
    expect(load({ env: { ARTIFACTAPI_STORAGE_SECRET_KEY_FILE: secret } }).storage.secret_key).toBe('from-the-file');
    expect(load({ file: toml(`[storage]\nsecret_key = "plain"\nsecret_key_file = "${secret}"\n`) }).storage.secret_key).toBe('from-the-file');
    expect(load({ file: toml(`[storage]\nsecret_key = "plain"\nsecret_key_file = "${secret}"\nsecret_key_env = "S"\n`), env: { S: 'env' } }).storage.secret_key).toBe('env');
  });

  it('a missing file or an unset variable names the key, the file or variable, and where it was set', () => {
    const missing = join(dir, 'no-such-secret');
    const f = toml(`[storage]\nsecret_key_file = "${missing}"\n[database]\nurl_env = "DB_URL"\n`);
    expect(errorOf({ file: f })).toBe(`${f}: database.url_env: environment variable DB_URL is not set; ${f}: storage.secret_key_file: cannot read ${missing} (ENOENT)`);
    expect(errorOf({ env: { ARTIFACTAPI_STORAGE_SECRET_KEY_FILE: missing } })).toBe(`environment ARTIFACTAPI_STORAGE_SECRET_KEY_FILE: storage.secret_key_file: cannot read ${missing} (ENOENT)`);
  });

  it('a bad secret value is never echoed in the error', () => {
    const f = toml('[storage]\nsecret_key = 123456789\n[[repos]]\nname = "r"\nformat = "generic"\nkind = "remote"\nupstream = "http://x/"\npassword = ["hunter2"]\n');
    const msg = errorOf({ file: f });
    expect(msg).toBe(`${f}: storage.secret_key: expected a string, got a number (value not shown); repos[0].password: expected a string, got a list (value not shown)`);
  });
});
