import type { FormatName, FormatSpec, KeySpecs } from '../config/schema.js';
import type { AppError } from '../lib/errors.js';
import type { Services } from '../repos/services.js';
import type { RepoDef } from '../storage/meta/types.js';
import type { Action, Entry, Operation, Route } from '../server/pipeline.js';

export interface ChallengeDetail {
  touch?: { repo: RepoDef; action: Action };
  error?: string;
}

/** What a format handler is told about the request it handles under /REPO/. */
export interface RequestCtx {
  repo: RepoDef;
  /** The raw path after `/REPO/` (still percent-encoded, no query). */
  rest: string;
  /** Base URL for links written into documents: public_url or from the request's Host. */
  baseUrl: string;
  /** `${baseUrl}/${repo.name}` */
  repoUrl: string;
}

export interface GcContext {
  svc: Services;
  dryRun: boolean;
  now: number;
  report(line: { action: string; repo?: string; path?: string; digest?: string; bytes?: number }): void;
}

/**
 * Everything that differs per format. Kinds (local, remote, virtual) are not
 * here: handlers call repos/resolve.ts and repos/local.ts, which implement
 * each kind once for every format.
 */
export interface FormatHandler extends FormatSpec {
  readonly name: FormatName;
  /** Repo options only this format's repos take (validated by the core with the rest: TOML, API, `--set`). */
  readonly options?: KeySpecs;
  /** The format's `[<name>]` config section; read it with formatConfig(svc.config, name, spec). */
  readonly config?: KeySpecs;
  /**
   * The format's routes under /REPO/, as data (server/pipeline.ts): the core matches them, knows
   * (repos, action, format) and runs the auth/audit hooks before and after the handler.
   */
  routes: Route[];
  /**
   * How the path after `/REPO/` (or the entry prefix) decodes before non-raw routes match it;
   * default lib/paths safeRepoPath (percent-decoded, traversal refused with INVALID_PATH).
   */
  decodePath?(rest: string): string;
  /** Routes outside /REPO/ in the format's own URL layout (docker's `/v2/`), served by the same dispatcher. */
  entry?: Entry;
  /** Error body in the protocol's own shape; default `{"error":{"code","message"}}`. */
  errorBody?(code: string, message: string, status: number): unknown;
  /**
   * The `WWW-Authenticate` value of a 401 (the core adds it); default `Basic realm="artifactapi"`.
   * `o.touch` is the repo and action that was refused, `o.error` the reason (docker's `invalid_token`).
   */
  challenge?(op: Operation, baseUrl: string, o?: ChallengeDetail): string;
  /** How a repo the caller may not read answers (exactly as a missing one would); default REPO_NOT_FOUND. */
  notFound?(op: Operation, repo: RepoDef): AppError;
  /**
   * gc: drop the format's own unreferenced rows (untagged manifests...) before blobs are swept.
   * `run` is given the format's repos of the kinds it names.
   */
  gc?: { kinds: RepoDef['kind'][]; run(ctx: GcContext, repos: RepoDef[]): Promise<void> };
}
