/**
 * The one error type. Codes map to HTTP statuses in one table; each protocol
 * (docker, npm, the rest) renders the body in its own shape.
 */
export const STATUS_BY_CODE = {
  BAD_REQUEST: 400,
  INVALID_PATH: 400,
  INVALID_CONFIG: 400,
  DIGEST_INVALID: 400,
  SIZE_INVALID: 400,
  NAME_INVALID: 400,
  TAG_INVALID: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  BLOB_UPLOAD_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  NOT_FOUND: 404,
  REPO_NOT_FOUND: 404,
  NAME_UNKNOWN: 404,
  MANIFEST_UNKNOWN: 404,
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_UNKNOWN: 404,
  UPSTREAM_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  UNSUPPORTED: 405,
  CONFLICT: 409,
  REPO_EXISTS: 409,
  TOO_LARGE: 413,
  RANGE_INVALID: 416,
  RANGE_NOT_SATISFIABLE: 416,
  TOOMANYREQUESTS: 429,
  CLIENT_CLOSED: 499,
  INTERNAL: 500,
  UNKNOWN: 500,
  UPSTREAM_FAILED: 502,
  UNAVAILABLE: 503,
  UPSTREAM_TIMEOUT: 504,
  LOOP_DETECTED: 508,
} as const;

export type ErrorCode = keyof typeof STATUS_BY_CODE;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly detail?: unknown;
  /** Response headers that belong to this answer (a 401's WWW-Authenticate, a 429's Retry-After). */
  headers?: Record<string, string>;
  constructor(code: ErrorCode, message: string, detail?: unknown, headers?: Record<string, string>) {
    super(message);
    this.name = 'AppError';
    this.code = code;
    this.detail = detail;
    if (headers) this.headers = headers;
  }
  get status(): number {
    return STATUS_BY_CODE[this.code];
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}

/** Status for any thrown value: AppErrors by table, fastify errors by their statusCode, else 500. */
export function statusOf(err: unknown): number {
  if (err instanceof AppError) return err.status;
  const s = (err as { statusCode?: number })?.statusCode;
  return typeof s === 'number' && s >= 400 && s < 600 ? s : 500;
}

/** Message safe to show a client: 5xx bodies never carry internals. */
export function publicMessage(err: unknown): string {
  const status = statusOf(err);
  if (err instanceof AppError) return err.message;
  if (status >= 500) return 'internal error';
  return (err as Error)?.message ?? 'error';
}
