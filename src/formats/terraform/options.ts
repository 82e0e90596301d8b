import type { KeySpecs } from '../../config/schema.js';
import { pgpOptions } from '../../lib/pgp.js';

/** `[terraform]`: the host as a registry. */
export const TERRAFORM_CONFIG = {
  default_repo: { type: 'string', default: '', doc: 'repo that /.well-known/terraform.json points at' },
} satisfies KeySpecs;

/** Options of a terraform repo. */
export const TERRAFORM_OPTIONS = pgpOptions('each provider version\'s SHA256SUMS of a local repo');
