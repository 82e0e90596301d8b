/** Docker error codes for the project's generic codes (same status, the spec's vocabulary). */
const DOCKER_CODE: Record<string, string> = {
  NOT_FOUND: 'NAME_UNKNOWN',
  REPO_NOT_FOUND: 'NAME_UNKNOWN',
  UPSTREAM_NOT_FOUND: 'NAME_UNKNOWN',
  METHOD_NOT_ALLOWED: 'UNSUPPORTED',
  RANGE_NOT_SATISFIABLE: 'RANGE_INVALID',
  TOO_LARGE: 'SIZE_INVALID',
  BAD_REQUEST: 'UNSUPPORTED',
  INVALID_PATH: 'NAME_INVALID',
  CONFLICT: 'DENIED',
  UPSTREAM_FAILED: 'UNAVAILABLE',
  UPSTREAM_TIMEOUT: 'UNAVAILABLE',
  INTERNAL: 'UNKNOWN',
};

const SPEC_CODES = new Set(['BLOB_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'BLOB_UPLOAD_UNKNOWN', 'DIGEST_INVALID', 'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID', 'MANIFEST_UNKNOWN', 'NAME_INVALID', 'NAME_UNKNOWN', 'SIZE_INVALID', 'TAG_INVALID', 'UNAUTHORIZED', 'DENIED',
  'UNSUPPORTED', 'TOOMANYREQUESTS', 'RANGE_INVALID', 'UNAVAILABLE', 'UNKNOWN']);

/** `{"errors":[{"code","message","detail"}]}` as distribution writes it. */
export function dockerErrorBody(code: string, message: string): unknown {
  const c = SPEC_CODES.has(code) ? code : DOCKER_CODE[code] ?? 'UNKNOWN';
  return { errors: [{ code: c, message, detail: null }] };
}
