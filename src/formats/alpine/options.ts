import type { KeySpecs } from '../../config/schema.js';

/** Options of an alpine repo. */
export const ALPINE_OPTIONS = {
  signing_key: { type: 'string', default: undefined, secret: true, doc: 'local/virtual: PEM RSA private key that signs APKINDEX (default: generated and stored)' },
  key_name: { type: 'string', default: undefined, doc: 'signing key name (<name>.rsa.pub); default <repo>-<fingerprint>' },
} satisfies KeySpecs;
