import { describe, expect, it } from 'vitest';
import { decodePath, parseJson, tryDecode } from '../../src/lib/decode.js';
import { AppError } from '../../src/lib/errors.js';

const thrown = (fn: () => unknown): AppError => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected an AppError');
};

describe('decodePath / tryDecode', () => {
  it('decodes, or fails with 400 INVALID_PATH (or the code the protocol wants)', () => {
    expect(decodePath('%40scope%2Fname')).toBe('@scope/name');
    const e = thrown(() => decodePath('bad%zz'));
    expect([e.code, e.status, e.message]).toEqual(['INVALID_PATH', 400, 'malformed percent-encoding in path']);
    const d = thrown(() => decodePath('%E0%A4%A', 'NAME_INVALID', 'malformed path'));
    expect([d.code, d.status, d.message]).toEqual(['NAME_INVALID', 400, 'malformed path']);
    expect(tryDecode('a%20b')).toBe('a b');
    expect(tryDecode('%')).toBeUndefined();
  });
});

describe('parseJson', () => {
  it('parses a Buffer or a string; otherwise the given code and message, never the parser\'s text', () => {
    expect(parseJson(Buffer.from('{"a":[1]}'), 'BAD_REQUEST', 'x')).toEqual({ a: [1] });
    expect(parseJson('null', 'BAD_REQUEST', 'x')).toBeNull();
    const e = thrown(() => parseJson(Buffer.from('{"token": "secret-tok'), 'UPSTREAM_FAILED', 'upstream token server answered no JSON'));
    expect([e.code, e.status, e.message]).toEqual(['UPSTREAM_FAILED', 502, 'upstream token server answered no JSON']);
  });
});
