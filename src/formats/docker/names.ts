import { formatConfig } from '../../config/schema.js';
import { AppError } from '../../lib/errors.js';
import type { RepoDef } from '../../storage/meta/types.js';
import type { Services } from '../../repos/services.js';
import { DOCKER_CONFIG } from './options.js';

/** distribution's path-component grammar (reference/regexp.go), applied to each segment of an image name. */
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const MAX_NAME = 255;

export function validateImage(image: string): void {
  if (image.length === 0 || image.length > MAX_NAME || !image.split('/').every((c) => COMPONENT.test(c))) {
    throw new AppError('NAME_INVALID', `invalid repository name "${image.slice(0, 300)}"`);
  }
}

export function isTag(tag: string): boolean {
  return TAG.test(tag);
}

export function validateTag(tag: string): void {
  if (!isTag(tag)) throw new AppError('TAG_INVALID', `invalid tag "${tag.slice(0, 200)}"`);
}

/** An image name as the client wrote it, resolved to the repo that serves it and the image inside that repo. */
export interface Target {
  /** The name in the client's URL (used in Location headers). */
  name: string;
  repo: RepoDef;
  image: string;
  /** containerd's `ns=` (the registry the client meant), for default-repo mirrors. */
  ns?: string;
}

/**
 * `REPO/IMAGE`: the first segment is a docker repo. Otherwise, when
 * `docker.default_repo` is set, the whole name is an image of that repo
 * (a registry mirror: `HOST/library/alpine`, `HOST/alpine`).
 */
export async function resolveName(svc: Services, name: string, ns?: string): Promise<Target> {
  const slash = name.indexOf('/');
  if (slash > 0) {
    const repo = await svc.repos.get(name.slice(0, slash));
    if (repo && repo.format === 'docker') {
      const image = name.slice(slash + 1);
      validateImage(image);
      return { name, repo, image, ns };
    }
  }
  const def = formatConfig(svc.config, 'docker', DOCKER_CONFIG).default_repo;
  if (def) {
    const repo = await svc.repos.get(def);
    if (repo && repo.format === 'docker') {
      validateImage(name);
      return { name, repo, image: name, ns };
    }
  }
  validateImage(name);
  throw new AppError('NAME_UNKNOWN', `repository name not known to registry: ${name}`);
}

/** Storage keys of the facts a docker repo keeps, one row each. */
export const keys = {
  manifest: (image: string, digest: string) => `${image}/_manifests/${digest}`,
  manifests: (image: string) => `${image}/_manifests/`,
  tag: (image: string, tag: string) => `${image}/_tags/${tag}`,
  tags: (image: string) => `${image}/_tags/`,
  layer: (image: string, digest: string) => `${image}/_layers/${digest}`,
  layers: (image: string) => `${image}/_layers/`,
};

/** `a/b/_tags/x` -> `{ image: 'a/b', kind: 'tags', id: 'x' }` */
export function splitKey(path: string): { image: string; kind: string; id: string } | null {
  const m = /^(.+)\/(_manifests|_tags|_layers)\/([^/]+)$/.exec(path);
  return m ? { image: m[1], kind: m[2], id: m[3] } : null;
}

/** Bounded page size: never allocate from the client's `n`. */
export function pageSize(raw: unknown, max = 1000): number {
  if (raw === undefined || raw === '') return max;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new AppError('BAD_REQUEST', 'n must be a non-negative integer');
  return Math.min(n, max);
}
