import { readFileSync, statSync } from 'node:fs';
import { AppError } from './errors.js';

/**
 * Secret-valued keys (upstream passwords, signing keys, passphrases) may be given three ways:
 * `X = "value"`, `X_file = "/path"` (the file's contents, trailing newlines trimmed) or
 * `X_env = "VAR"` (the variable's value). `_env` wins over `_file`, which wins over `X`.
 * Errors name the key and the file or variable, never the value.
 */
export const MASK = '********';

export class SecretError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretError';
  }
}

/** Small secrets only: a signing key is a few KiB. */
const MAX_SECRET_FILE = 1024 * 1024;

/** Read files by path, reread when their mtime or size changes (a rotated secret is picked up). */
const files = new Map<string, { mtimeMs: number; size: number; text: string }>();

function readSecretFile(path: string, key: string): string {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    throw new SecretError(`${key}_file: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!st.isFile()) throw new SecretError(`${key}_file: ${path} is not a file`);
  if (st.size > MAX_SECRET_FILE) throw new SecretError(`${key}_file: ${path} is larger than ${MAX_SECRET_FILE} bytes`);
  const hit = files.get(path);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.text;
  let text: string;
  try {
    text = readFileSync(path, 'utf8').replace(/(\r?\n)+$/, '');
  } catch (err) {
    throw new SecretError(`${key}_file: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (files.size > 256) files.clear();
  files.set(path, { mtimeMs: st.mtimeMs, size: st.size, text });
  return text;
}

/**
 * The value of secret `key` in a table of options or a config section, or undefined when none of
 * `key`, `key_file`, `key_env` is set. Throws SecretError when the one that applies cannot be read.
 */
export function readSecret(values: Readonly<Record<string, unknown>>, key: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const envName = values[`${key}_env`];
  if (typeof envName === 'string' && envName) {
    const v = env[envName];
    if (v === undefined || v === '') throw new SecretError(`${key}_env: environment variable ${envName} is not set`);
    return v;
  }
  const file = values[`${key}_file`];
  if (typeof file === 'string' && file) return readSecretFile(file, key);
  const v = values[key];
  return typeof v === 'string' ? v : undefined;
}

/** readSecret for a repo's option at use time: a failure is a 500 that names the repo and the key (AppError). */
export function repoSecret(repo: { name: string; options: Readonly<Record<string, unknown>> }, key: string): string | undefined {
  try {
    return readSecret(repo.options, key);
  } catch (err) {
    if (err instanceof SecretError) throw new AppError('INTERNAL', `${repo.name}: ${err.message}`);
    throw err;
  }
}

/** A copy of `values` with every set secret replaced by MASK; `_file` / `_env` names stay visible. */
export function redact(values: Readonly<Record<string, unknown>>, secrets: readonly string[]): Record<string, unknown> {
  const out = { ...values };
  for (const k of secrets) if (out[k] !== undefined && out[k] !== '') out[k] = MASK;
  return out;
}
