import jsyaml from 'js-yaml';
import { AppError, type ErrorCode } from './errors.js';

/**
 * YAML as plain JSON data. The core schema keeps timestamps as strings (as helm reads them), and
 * the result is copied within a node budget: an alias is a shared reference after parsing, so a
 * document of nested aliases would otherwise expand exponentially in whatever walks it next.
 */
export function parseYaml(text: string, what: string, o: { maxNodes?: number; code?: ErrorCode } = {}): unknown {
  const code = o.code ?? 'BAD_REQUEST';
  let doc: unknown;
  try {
    doc = jsyaml.load(text, { schema: jsyaml.CORE_SCHEMA, json: true });
  } catch (err) {
    throw new AppError(code, `${what} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  let budget = o.maxNodes ?? Math.max(10_000, text.length);
  const copy = (v: unknown): unknown => {
    if (--budget < 0) throw new AppError(code, `${what} expands beyond its size (YAML aliases)`);
    if (Array.isArray(v)) return v.map(copy);
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) if (k !== '__proto__') out[k] = copy(x);
      return out;
    }
    return v;
  };
  return copy(doc);
}

/**
 * A scalar, list or mapping as one line of YAML: JSON is a subset of YAML 1.2, and JSON.stringify
 * is far faster than a YAML emitter on documents of thousands of entries.
 */
export function yamlValue(v: unknown): string {
  return JSON.stringify(v);
}
