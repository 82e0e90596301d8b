import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { REPO_KEYS, ROOT_KEYS, SECTIONS, type KeySpec } from '../../src/config/schema.js';
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
    expect(cfg.repos.map((r) => `${r.name}:${r.kind}`)).toEqual(['releases-local:local', 'releases-remote:remote', 'vendor-remote:remote', 'releases:virtual', 'alpine-local:local', 'el9-local:local']);
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
    for (const [section, keys] of Object.entries(SECTIONS)) {
      expect(Object.keys(doc[section] ?? {}).sort(), `[${section}] keys`).toEqual(Object.keys(keys).sort());
      for (const [k, spec] of Object.entries(keys as Record<string, KeySpec>)) {
        expect(doc[section][k], `${section}.${k} is its default`).toEqual(spec.default);
        expect(cfg[section][k], `${section}.${k} loads as the default`).toEqual(defaults[section][k]);
        if (spec.default !== '') expect(cfg[section][k]).toEqual(coerced(spec));
        expect(commentAbove(section, k), `comment for ${section}.${k}`).toBeDefined();
      }
    }
    // nothing in the file that the schema does not know
    const known = new Set([...Object.keys(ROOT_KEYS), ...Object.keys(SECTIONS), 'repos']);
    expect(Object.keys(doc).filter((k) => !known.has(k))).toEqual([]);
  });

  it('shows every [[repos]] key of the schema in an example, with a comment', () => {
    const used = new Set((doc.repos as Record<string, unknown>[]).flatMap((r) => Object.keys(r)));
    for (const k of Object.keys(REPO_KEYS)) {
      expect(used.has(k), `repo key ${k} appears in an example [[repos]]`).toBe(true);
      expect(text, `repo key ${k} has a comment`).toMatch(new RegExp(`#[^\\n]*\\n${k}\\s*=`));
    }
  });
});
