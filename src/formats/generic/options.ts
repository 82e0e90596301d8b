import type { KeySpecs } from '../../config/schema.js';

/** Options of a generic repo. */
export const GENERIC_OPTIONS = {
  mutable: { type: 'string[]', default: undefined, doc: 'remote: path globs treated as mutable metadata (TTL); replaces the default list' },
} satisfies KeySpecs;
