import type { KeySpecs } from '../../config/schema.js';

/** Options of an rpm repo. */
export const RPM_OPTIONS = {
  gpg_key: { type: 'string', default: undefined, secret: true, doc: 'local/virtual: armored OpenPGP private key that signs repodata/repomd.xml (repomd.xml.asc)' },
  gpg_passphrase: { type: 'string', default: undefined, secret: true, doc: 'the passphrase of a protected gpg_key' },
} satisfies KeySpecs;
