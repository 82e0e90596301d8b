import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { parseDuration, parseSize } from '../lib/units.js';
import { REPO_KEYS, ROOT_KEYS, SECTIONS, type Config, type KeySpec, type RepoConfig } from './schema.js';

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
}

function coerce(spec: KeySpec, value: unknown, where: string): unknown {
  const bad = (want: string) => new ConfigError(`${where}: expected ${want}, got ${JSON.stringify(value)}`);
  switch (spec.type) {
    case 'string':
      if (typeof value !== 'string') throw bad('a string');
      return value;
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
  }
}

function defaults(): Record<string, any> {
  const out: Record<string, unknown> = {};
  for (const [k, spec] of Object.entries(ROOT_KEYS)) out[k] = coerce(spec, spec.default, k);
  for (const [section, keys] of Object.entries(SECTIONS)) {
    const s: Record<string, unknown> = {};
    for (const [k, spec] of Object.entries(keys)) s[k] = coerce(spec as KeySpec, (spec as KeySpec).default, `${section}.${k}`);
    out[section] = s;
  }
  out.repos = [];
  return out;
}

/** Sets `dotted` in `target`, validating the key exists and coercing its value. */
function setKey(target: Record<string, any>, dotted: string, value: unknown, where: string): void {
  const [a, b, ...rest] = dotted.split('.');
  if (rest.length === 0 && b === undefined) {
    const spec = (ROOT_KEYS as Record<string, KeySpec>)[a];
    if (!spec) throw new ConfigError(`${where}: unknown key "${a}"`);
    target[a] = coerce(spec, value, `${where}: ${a}`);
    return;
  }
  const section = (SECTIONS as Record<string, Record<string, KeySpec>>)[a];
  if (!section || rest.length > 0) throw new ConfigError(`${where}: unknown key "${dotted}"`);
  const spec = section[b];
  if (!spec) throw new ConfigError(`${where}: unknown key "${dotted}"`);
  target[a][b] = coerce(spec, value, `${where}: ${dotted}`);
}

/** Validates one repo entry (TOML [[repos]] or API body) into a RepoConfig. */
export function parseRepoEntry(entry: Record<string, unknown>, where: string): RepoConfig {
  const options: Record<string, unknown> = {};
  const out: RepoConfig = { name: '', format: '', kind: '', options };
  for (const [k, v] of Object.entries(entry)) {
    const spec = (REPO_KEYS as Record<string, KeySpec>)[k];
    if (!spec) throw new ConfigError(`${where}: unknown key "${k}"`);
    if (v === undefined || v === null) continue;
    const value = coerce(spec, v, `${where}.${k}`);
    if (k === 'name' || k === 'format' || k === 'kind' || k === 'upstream') out[k] = value as string;
    else if (k === 'members') out.members = value as string[];
    else options[k] = value;
  }
  if (!out.name) throw new ConfigError(`${where}: "name" is required`);
  if (!out.format) throw new ConfigError(`${where}: "format" is required`);
  if (!out.kind) throw new ConfigError(`${where}: "kind" is required`);
  return out;
}

function applyToml(cfg: Record<string, any>, doc: Record<string, unknown>, file: string): void {
  for (const [k, v] of Object.entries(doc)) {
    if (k === 'repos') {
      if (!Array.isArray(v)) throw new ConfigError(`${file}: "repos" must be an array of tables ([[repos]])`);
      cfg.repos = v.map((entry, i) => parseRepoEntry(entry as Record<string, unknown>, `${file}: repos[${i}]`));
    } else if (v && typeof v === 'object' && !Array.isArray(v) && k in SECTIONS) {
      for (const [kk, vv] of Object.entries(v)) setKey(cfg, `${k}.${kk}`, vv, file);
    } else {
      setKey(cfg, k, v, file);
    }
  }
}

function applyEnv(cfg: Record<string, any>, env: NodeJS.ProcessEnv): void {
  const aliases: Record<string, string> = { ARTIFACTAPI_PORT: 'server.port', ARTIFACTAPI_HOST: 'server.host' };
  for (const k of Object.keys(ROOT_KEYS)) aliases[`ARTIFACTAPI_${k.toUpperCase()}`] = k;
  for (const [section, keys] of Object.entries(SECTIONS)) {
    for (const k of Object.keys(keys)) aliases[`ARTIFACTAPI_${section.toUpperCase()}_${k.toUpperCase()}`] = `${section}.${k}`;
  }
  for (const [name, dotted] of Object.entries(aliases)) {
    const v = env[name];
    if (v !== undefined && v !== '') setKey(cfg, dotted, v, `environment ${name}`);
  }
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
  const cfg = defaults();
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
      throw new ConfigError(`${file}: invalid TOML: ${(err as Error).message.split('\n')[0]}`);
    }
    applyToml(cfg, doc, file);
    cfg.source = resolve(file);
  }
  applyEnv(cfg, env);
  for (const [k, v] of Object.entries(o.flags ?? {})) if (v !== undefined) setKey(cfg, k, v, 'command line');
  const dataDir = resolve(cfg.data_dir as string);
  cfg.data_dir = dataDir;
  if (!cfg.database.url) cfg.database.url = `sqlite://${resolve(dataDir, 'artifactapi.db')}`;
  if (!cfg.storage.path) cfg.storage.path = resolve(dataDir, 'cas');
  if (cfg.storage.type !== 'fs' && cfg.storage.type !== 's3') throw new ConfigError(`storage.type: expected "fs" or "s3", got "${cfg.storage.type}"`);
  return deepFreeze(cfg) as unknown as Config;
}
