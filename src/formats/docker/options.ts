import type { KeySpecs } from '../../config/schema.js';

/** `[docker]`: the registry as a whole. */
export const DOCKER_CONFIG = {
  default_repo: { type: 'string', default: '', doc: 'docker repo that serves unprefixed image names (registry mirror)' },
  untagged_age: { type: 'duration', default: '24h', doc: 'gc: untagged manifests older than this are reclaimable' },
} satisfies KeySpecs;

/** Options of a docker repo. */
export const DOCKER_OPTIONS = {
  docker_hub: { type: 'boolean', default: undefined, doc: 'remote: the upstream is Docker Hub (official images under library/) though its host does not say so' },
} satisfies KeySpecs;
