import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout's root (benches run `bin/artifactapi` and read `dist/` from it). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** `--name N` from the command line as a number, else `def`. */
export function opt(name, def) {
  const args = process.argv.slice(2);
  const i = args.indexOf(`--${name}`);
  return Number(i >= 0 ? args[i + 1] : def);
}
