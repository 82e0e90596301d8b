import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { ROOT_KEYS, type KeySpec } from '../../src/config/schema.js';
import { SCHEMA } from '../../src/formats/index.js';
import { parseDuration, parseSize } from '../../src/lib/units.js';

const FILE = join(import.meta.dirname, '../../artifactapi.example.toml');
const text = readFileSync(FILE, 'utf8');
const doc = parse(text) as Record<string, any>;

/** The value the schema's default coerces to (what loadConfig yields with no file). */
function coerced(spec: KeySpec): unknown {
  if (spec.type === 'duration') return parseDuration(spec.default as string);
  if (spec.type === 'size') return parseSize(spec.default as string);
  return spec.default;
}

/** The comment line right above `key = ` in the given TOML table's text. */
function commentAbove(section: string | null, key: string): string | undefined {
  const lines = text.split('\n');
  let current: string | null = null;
  for (let i = 0; i < lines.length; i++) {
    const header = /^\s*\[([a-z_]+)\]\s*$/.exec(lines[i]);
    if (header) current = header[1];
    if (/^\s*\[\[repos\]\]/.test(lines[i])) current = 'repos';
    if (current === section && new RegExp(`^${key}\\s*=`).test(lines[i])) return /^\s*#/.test(lines[i - 1]) ? lines[i - 1] : undefined;
  }
  return undefined;
}

describe('artifactapi.example.toml', () => {
  it('loads through loadConfig without error', () => {
    const cfg = loadConfig({ file: FILE, env: {}, noDefaultFile: true });
    expect(cfg.source).toBe(FILE);
    expect(cfg.repos.map((r) => `${r.name}:${r.kind}`)).toEqual(['releases-local:local', 'releases-remote:remote', 'vendor-remote:remote', 'releases:virtual', 'hub-remote:remote', 'alpine-local:local', 'el9-local:local']);
  });

  it('sets every root and section key of the schema to its default, each with a comment above it', () => {
    const cfg = loadConfig({ file: FILE, env: {}, noDefaultFile: true }) as unknown as Record<string, any>;
    const defaults = loadConfig({ env: {}, noDefaultFile: true }) as unknown as Record<string, any>;
    for (const [k, spec] of Object.entries(ROOT_KEYS)) {
      expect(doc, `root key ${k}`).toHaveProperty([k]);
      expect(doc[k], `root key ${k} is its default`).toEqual(spec.default);
      expect(cfg[k]).toEqual(defaults[k]);
      expect(commentAbove(null, k), `comment for ${k}`).toBeDefined();
    }
    // core sections and every format's own section, each key but the `_file` / `_env` forms of secrets
    for (const [section, all] of Object.entries(SCHEMA.sections)) {
      const keys = Object.fromEntries(Object.entries(all).filter(([, s]) => !s.secretOf));
      if (Object.keys(keys).length === 0) continue;
      expect(Object.keys(doc[section] ?? {}).sort(), `[${section}] keys`).toEqual(Object.keys(keys).sort());
      for (const [k, spec] of Object.entries(keys)) {
        expect(doc[section][k], `${section}.${k} is its default`).toEqual(spec.default);
        expect(cfg[section][k], `${section}.${k} loads as the default`).toEqual(defaults[section][k]);
        if (spec.default !== '') expect(cfg[section][k]).toEqual(coerced(spec));
        expect(commentAbove(section, k), `comment for ${section}.${k}`).toBeDefined();
      }
    }
    // nothing in the file that the schema does not know
    const known = new Set([...Object.keys(ROOT_KEYS), ...Object.keys(SCHEMA.sections), 'repos']);
    expect(Object.keys(doc).filter((k) => !known.has(k))).toEqual([]);
  });

  it('shows every [[repos]] key of the core and of each format in an example of that format, with a comment', () => {
    const repos = doc.repos as Record<string, unknown>[];
    for (const format of SCHEMA.formats) {
      const used = new Set(repos.filter((r) => r.format === format).flatMap((r) => Object.keys(r)));
      const all = new Set(repos.flatMap((r) => Object.keys(r)));
      for (const [k, spec] of Object.entries(SCHEMA.repoKeys(format))) {
        if (spec.secretOf) continue;
        const own = SCHEMA.ownerOf(k) === format;
        if (!own && SCHEMA.ownerOf(k)) continue;
        // a secret counts as shown in any of its three forms
        const forms = spec.secret ? [k, `${k}_file`, `${k}_env`] : [k];
        const shown = forms.find((f) => (own ? used : all).has(f));
        expect(shown, `repo key ${k} appears in an example ${own ? `${format} ` : ''}[[repos]]`).toBeDefined();
        expect(text, `repo key ${shown} has a comment`).toMatch(new RegExp(`#[^\\n]*\\n${shown}\\s*=`));
      }
    }
  });
});
