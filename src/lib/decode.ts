import { AppError, type ErrorCode } from './errors.js';

/**
 * The two decodes every format does on untrusted input, written once: a percent-encoded path
 * segment, and a JSON document. Each fails with the AppError the caller's protocol wants.
 */

/** decodeURIComponent, or an AppError (400 INVALID_PATH unless told otherwise) for malformed percent-encoding. */
export function decodePath(raw: string, code: ErrorCode = 'INVALID_PATH', message = 'malformed percent-encoding in path'): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new AppError(code, message);
  }
}

/** decodeURIComponent, or undefined for malformed percent-encoding (names taken from upstream URLs). */
export function tryDecode(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

/**
 * JSON.parse of a UTF-8 body, or an AppError: `code` and `message` say whose fault it is in the
 * caller's protocol (a client's body: 400 BAD_REQUEST or MANIFEST_INVALID; an upstream's: 502
 * UPSTREAM_FAILED). The parser's own message is not passed on (it can quote the input).
 */
export function parseJson(body: Buffer | string, code: ErrorCode, message: string): unknown {
  try {
    return JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch {
    throw new AppError(code, message);
  }
}
