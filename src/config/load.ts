import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { parseDuration, parseSize } from '../lib/units.js';
import { RESERVED_NAMES } from '../repos/registry.js';
import { SCHEMA } from '../formats/index.js';
import { readSecret, SecretError } from '../lib/secrets.js';
import { FORMATS, ROOT_KEYS, type Config, type KeySpec, type RepoConfig, type Schema } from './schema.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Flag values by dotted key: { 'server.port': 9000, data_dir: '/x' } */
  flags?: Record<string, unknown>;
  /** Skip reading ./artifactapi.toml when no file is given (tests). */
  noDefaultFile?: boolean;
  /** The composed schema; default: the core with this build's formats (formats/index.ts). */
  schema?: Schema;
}

const hidden = (spec: KeySpec, value: unknown) => (spec.secret ? `a ${Array.isArray(value) ? 'list' : typeof value} (value not shown)` : JSON.stringify(value));

function coerce(spec: KeySpec, value: unknown, where: string): unknown {
  const bad = (want: string) => new ConfigError(`${where}: expected ${want}, got ${hidden(spec, value)}`);
  const checked = (v: unknown) => {
    if (spec.choices && !spec.choices.includes(v as string)) throw new ConfigError(`${where}: expected one of ${spec.choices.join(', ')}, got ${hidden(spec, v)}`);
    return v;
  };
  switch (spec.type) {
    case 'string':
      if (typeof value !== 'string') throw bad('a string');
      return checked(value);
    case 'number': {
      const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isFinite(n)) throw bad('a number');
      return n;
    }
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (value === 'true' || value === '1') return true;
      if (value === 'false' || value === '0') return false;
      throw bad('true or false');
    case 'duration':
      try { return parseDuration(value as string); } catch { throw bad('a duration like "30s"'); }
    case 'size':
      try { return parseSize(value as string); } catch { throw bad('a size like "4MiB"'); }
    case 'string[]':
      if (typeof value === 'string') return value.split(',').map((s) => s.trim()).filter(Boolean);
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw bad('a list of strings');
      return value;
    case 'trust': {
      if (typeof value === 'boolean') return value;
      if (value === 'true' || value === 'false') return value === 'true';
      const list = typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter(Boolean) : value;
      if (!Array.isArray(list) || list.length === 0 || list.some((v) => typeof v !== 'string' || !isAddressOrCidr(v))) {
        throw bad('true, false or a list of addresses/CIDRs');
      }
      return list;
    }
  }
}

/** `10.0.0.1`, `::1`, `10.0.0.0/8`, `fd00::/8` (what fastify's trustProxy list accepts). */
function isAddressOrCidr(v: string): boolean {
  const [addr, bits, ...extra] = v.split('/');
  const family = isIP(addr);
  if (!family || extra.length > 0) return false;
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
}

function defaults(schema: Schema): Record<string, any> {
  const out: Record<string, unknown> = {};
  for (const [k, spec] of Object.entries(ROOT_KEYS)) out[k] = coerce(spec, spec.default, k);
  for (const [section, keys] of Object.entries(schema.sections)) {
    const s: Record<string, unknown> = {};
    for (const [k, spec] of Object.entries(keys)) if (spec.default !== undefined) s[k] = coerce(spec, spec.default, `${section}.${k}`);
    out[section] = s;
  }
  out.repos = [];
  return out;
}

/** Keys that moved: the old name's error says where to. */
const MOVED: Record<string, string> = { 'gc.untagged_age': 'docker.untagged_age' };

/** Sets `dotted` in `target`, validating the key exists and coercing its value. Messages name the dotted key. */
function setKey(schema: Schema, target: Record<string, any>, dotted: string, value: unknown): void {
  const [a, b, ...rest] = dotted.split('.');
  if (rest.length === 0 && b === undefined) {
    const spec = (ROOT_KEYS as Record<string, KeySpec>)[a];
    if (!spec) throw new ConfigError(`unknown key "${a}"`);
    target[a] = coerce(spec, value, a);
    return;
  }
  const section = schema.sections[a];
  const spec = section && rest.length === 0 ? section[b] : undefined;
  if (!spec) throw new ConfigError(`unknown key "${dotted}"${MOVED[dotted] ? ` (now ${MOVED[dotted]})` : ''}`);
  target[a][b] = coerce(spec, value, dotted);
}

/** Runs each step, collecting ConfigError messages, so one error reports every bad key. */
function collect(problems: string[], fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(err.message);
  }
}

/**
 * Validates one repo entry (TOML [[repos]] or API body) into a RepoConfig, with the keys its
 * format takes (the core's and the format's own).
 * `where` prefixes the message ("repository", a file); `path` prefixes key names ("repos[2].").
 */
export function parseRepoEntry(entry: Record<string, unknown>, where: string, path = '', schema: Schema = SCHEMA): RepoConfig {
  const options: Record<string, unknown> = {};
  const out: RepoConfig = { name: '', format: '', kind: '', options };
  const problems: string[] = [];
  if (!entry || typeof entry !== 'object' || Array.isArray(entry)) throw new ConfigError(`${where ? `${where}: ` : ''}${path || 'repo'} must be a table`);
  const format = typeof entry.format === 'string' ? entry.format : '';
  const known = schema.formats.includes(format);
  const keys = schema.repoKeys(format);
  for (const [k, v] of Object.entries(entry)) {
    const owner = schema.ownerOf(k);
    // A key of another format: an error when the format is known, noise when it is not (that error is said once).
    const spec = keys[k] ?? (!known && owner ? schema.repoKeys(owner)[k] : undefined);
    if (!spec) {
      problems.push(`unknown key "${path}${k}"${owner ? ` (a key of ${owner} repos, not ${format})` : ''}`);
      continue;
    }
    if (v === undefined || v === null) continue;
    collect(problems, () => {
      const value = coerce(spec, v, `${path}${k}`);
      if (k === 'name' || k === 'format' || k === 'kind' || k === 'upstream') out[k] = value as string;
      else if (k === 'members') out.members = value as string[];
      else options[k] = value;
    });
  }
  for (const k of ['name', 'format', 'kind'] as const) if (!out[k] && !problems.some((p) => p.startsWith(`${path}${k}:`))) problems.push(`"${path}${k}" is required`);
  if (problems.length) throw new ConfigError(`${where ? `${where}: ` : ''}${problems.join('; ')}`);
  return out;
}

const REPO_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** Where each section key was last set ("environment ARTIFACTAPI_…", a file, "command line"), for secret errors. */
type Origins = Map<string, string>;

function applyToml(schema: Schema, cfg: Record<string, any>, doc: Record<string, unknown>, file: string, origins: Origins): void {
  const problems: string[] = [];
  for (const [k, v] of Object.entries(doc)) {
    if (k === 'repos') {
      if (!Array.isArray(v)) {
        problems.push('"repos" must be an array of tables ([[repos]])');
        continue;
      }
      const seen = new Map<string, number>();
      cfg.repos = [];
      v.forEach((entry, i) => collect(problems, () => {
        const at = `repos[${i}]`;
        const r = parseRepoEntry(entry as Record<string, unknown>, '', `${at}.`, schema);
        // What the registry would refuse at start, said here with the key and the file.
        if (!REPO_NAME_RE.test(r.name) || RESERVED_NAMES.has(r.name)) throw new ConfigError(`${at}.name: "${r.name}" is ${RESERVED_NAMES.has(r.name) ? 'a reserved name' : `not a valid repo name (${REPO_NAME_RE.source})`}`);
        if (!(FORMATS as readonly string[]).includes(r.format)) throw new ConfigError(`${at}.format: unknown format "${r.format}" (one of: ${FORMATS.join(', ')})`);
        if (!['local', 'remote', 'virtual'].includes(r.kind)) throw new ConfigError(`${at}.kind: expected local, remote or virtual, got "${r.kind}"`);
        if (seen.has(r.name)) throw new ConfigError(`${at}.name: "${r.name}" is declared twice (also repos[${seen.get(r.name)}])`);
        seen.set(r.name, i);
        cfg.repos.push(r);
      }));
    } else if (v && typeof v === 'object' && !Array.isArray(v) && k in schema.sections) {
      for (const [kk, vv] of Object.entries(v)) collect(problems, () => {
        setKey(schema, cfg, `${k}.${kk}`, vv);
        origins.set(`${k}.${kk}`, file);
      });
    } else {
      collect(problems, () => setKey(schema, cfg, k, v));
    }
  }
  if (problems.length) throw new ConfigError(`${file}: ${problems.join('; ')}`);
}

function applyEnv(schema: Schema, cfg: Record<string, any>, env: NodeJS.ProcessEnv, origins: Origins): void {
  const aliases: Record<string, string> = { ARTIFACTAPI_PORT: 'server.port', ARTIFACTAPI_HOST: 'server.host' };
  for (const k of Object.keys(ROOT_KEYS)) aliases[`ARTIFACTAPI_${k.toUpperCase()}`] = k;
  for (const [section, keys] of Object.entries(schema.sections)) {
    for (const k of Object.keys(keys)) aliases[`ARTIFACTAPI_${section.toUpperCase()}_${k.toUpperCase()}`] = `${section}.${k}`;
  }
  for (const [name, dotted] of Object.entries(aliases)) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    try {
      setKey(schema, cfg, dotted, v);
      origins.set(dotted, `environment ${name}`);
    } catch (err) {
      throw err instanceof ConfigError ? new ConfigError(`environment ${name}: ${err.message}`) : err;
    }
  }
}

/**
 * Section secrets given as `X_file` / `X_env` become the value of `X` (the `_file`/`_env` keys are
 * dropped from the result). A file that cannot be read or a variable that is not set is an error
 * naming the key and where it was set.
 */
function resolveSectionSecrets(schema: Schema, cfg: Record<string, any>, env: NodeJS.ProcessEnv, origins: Origins): void {
  const problems: string[] = [];
  for (const [section, keys] of Object.entries(schema.sections)) {
    for (const [k, spec] of Object.entries(keys)) {
      if (!spec.secret) continue;
      const values = cfg[section] as Record<string, unknown>;
      try {
        if (spec.rawFile && !values[`${k}_env`] && values[`${k}_file`]) {
          // Its user reads the file as bytes; the file wins over the key itself.
          delete values[k];
          continue;
        }
        const v = readSecret(values, k, env);
        if (v !== undefined) values[k] = v;
      } catch (err) {
        if (!(err instanceof SecretError)) throw err;
        const via = values[`${k}_env`] ? `${k}_env` : `${k}_file`;
        const from = origins.get(`${section}.${via}`);
        problems.push(`${from ? `${from}: ` : ''}${section}.${err.message}`);
      }
      delete values[`${k}_file`];
      delete values[`${k}_env`];
    }
  }
  if (problems.length) throw new ConfigError(problems.join('; '));
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

export function loadConfig(o: LoadOptions = {}): Config {
  const env = o.env ?? process.env;
  const schema = o.schema ?? SCHEMA;
  const cfg = defaults(schema);
  const origins: Origins = new Map();
  const file = o.file ?? env.ARTIFACTAPI_CONFIG ?? (o.noDefaultFile ? undefined : existsSync('artifactapi.toml') ? 'artifactapi.toml' : undefined);
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`${file}: cannot read config file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    let doc: Record<string, unknown>;
    try {
      doc = parseToml(text) as Record<string, unknown>;
    } catch (err) {
      const e = err as Error & { line?: number; column?: number };
      const at = e.line ? ` at line ${e.line}${e.column ? `, column ${e.column}` : ''}` : '';
      throw new ConfigError(`${file}: invalid TOML${at}: ${e.message.split('\n')[0].replace(/^Invalid TOML document: /, '')}`);
    }
    applyToml(schema, cfg, doc, file, origins);
    cfg.source = resolve(file);
  }
  applyEnv(schema, cfg, env, origins);
  for (const [k, v] of Object.entries(o.flags ?? {})) {
    if (v === undefined) continue;
    try {
      setKey(schema, cfg, k, v);
      origins.set(k, 'command line');
    } catch (err) {
      throw err instanceof ConfigError ? new ConfigError(`command line: ${err.message}`) : err;
    }
  }
  resolveSectionSecrets(schema, cfg, env, origins);
  const dataDir = resolve(cfg.data_dir as string);
  cfg.data_dir = dataDir;
  if (!cfg.database.url) cfg.database.url = `sqlite://${resolve(dataDir, 'artifactapi.db')}`;
  if (!cfg.storage.path) cfg.storage.path = resolve(dataDir, 'cas');
  return deepFreeze(cfg) as unknown as Config;
}
