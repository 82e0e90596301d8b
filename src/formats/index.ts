import { composeSchema } from '../config/schema.js';
import type { FormatHandler } from './types.js';
import { alpine } from './alpine/index.js';
import { docker } from './docker/index.js';
import { generic } from './generic/index.js';
import { helm } from './helm/index.js';
import { npm } from './npm/index.js';
import { puppet } from './puppet/index.js';
import { pypi } from './pypi/index.js';
import { goproxy } from './goproxy/index.js';
import { rpm } from './rpm/index.js';
import { terraform } from './terraform/index.js';

/** The formats this build serves. Adding one is a folder and a line here. */
export const FORMAT_HANDLERS: Record<string, FormatHandler> = {
  generic,
  alpine,
  helm,
  docker,
  npm,
  pypi,
  puppet,
  rpm,
  terraform,
  goproxy,
};

/** Every format's options and config section joined with the core keys: what load.ts and the API validate with. */
export const SCHEMA = composeSchema(Object.values(FORMAT_HANDLERS));

export function formatHandler(name: string): FormatHandler | undefined {
  return FORMAT_HANDLERS[name];
}
