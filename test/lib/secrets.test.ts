import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/lib/errors.js';
import { MASK, readSecret, redact, repoSecret, SecretError } from '../../src/lib/secrets.js';

const dir = mkdtempSync(join(tmpdir(), 'artifactapi-secrets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const thrown = (fn: () => unknown): Error => {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
};

describe('readSecret: X, X_file, X_env', () => {
  it('the value itself; undefined when none of the three is set', () => {
    expect(readSecret({ password: 'pw' }, 'password')).toBe('pw');
    expect(readSecret({ username: 'u' }, 'password')).toBeUndefined();
  });

  it('X_file: the file contents with trailing newlines trimmed (inner newlines kept)', () => {
    const f = join(dir, 'pw');
    writeFileSync(f, 'from-file\n');
    expect(readSecret({ password_file: f }, 'password')).toBe('from-file');
    const pem = join(dir, 'key.pem');
    writeFileSync(pem, '-----BEGIN-----\nabc\n-----END-----\r\n\n');
    expect(readSecret({ signing_key_file: pem }, 'signing_key')).toBe('-----BEGIN-----\nabc\n-----END-----');
  });

  it('X_file is reread when the file changes (rotation)', () => {
    const f = join(dir, 'rot');
    writeFileSync(f, 'one\n');
    expect(readSecret({ password_file: f }, 'password')).toBe('one');
    writeFileSync(f, 'second\n');
    expect(readSecret({ password_file: f }, 'password')).toBe('second');
  });

  it('X_env: the variable, exactly', () => {
    expect(readSecret({ password_env: 'PW' }, 'password', { PW: ' spaced \n' })).toBe(' spaced \n');
  });

  it('X_env wins over X_file, which wins over X', () => {
    const f = join(dir, 'both');
    writeFileSync(f, 'file');
    expect(readSecret({ password: 'plain', password_file: f, password_env: 'PW' }, 'password', { PW: 'env' })).toBe('env');
    expect(readSecret({ password: 'plain', password_file: f }, 'password', {})).toBe('file');
  });

  it('a missing file, a directory, an unreadable file and an unset variable are errors naming the key and the file or variable', () => {
    const missing = join(dir, 'absent');
    const e = thrown(() => readSecret({ password: 'never-shown', password_file: missing }, 'password'));
    expect(e).toBeInstanceOf(SecretError);
    expect(e.message).toBe(`password_file: cannot read ${missing} (ENOENT)`);
    const sub = join(dir, 'sub');
    mkdirSync(sub);
    expect(thrown(() => readSecret({ gpg_key_file: sub }, 'gpg_key')).message).toBe(`gpg_key_file: ${sub} is not a file`);
    if (process.getuid?.() !== 0) {
      const locked = join(dir, 'locked');
      writeFileSync(locked, 'x');
      chmodSync(locked, 0o000);
      expect(thrown(() => readSecret({ gpg_key_file: locked }, 'gpg_key')).message).toBe(`gpg_key_file: cannot read ${locked} (EACCES)`);
    }
    expect(thrown(() => readSecret({ password_env: 'NOPE' }, 'password', {})).message).toBe('password_env: environment variable NOPE is not set');
    expect(thrown(() => readSecret({ password_env: 'EMPTY' }, 'password', { EMPTY: '' })).message).toBe('password_env: environment variable EMPTY is not set');
  });

  it('repoSecret: a failure at use time is a 500 AppError naming the repo and the key, never the value', () => {
    const e = thrown(() => repoSecret({ name: 'el9', options: { gpg_key: 'PRIVATE', gpg_key_file: join(dir, 'absent') } }, 'gpg_key'));
    expect(e).toBeInstanceOf(AppError);
    expect((e as AppError).status).toBe(500);
    expect(e.message).toBe(`el9: gpg_key_file: cannot read ${join(dir, 'absent')} (ENOENT)`);
  });
});

describe('redact', () => {
  it('masks set secrets, keeps _file/_env names and everything else', () => {
    const shown = redact({ username: 'u', password: 'pw', gpg_key_file: '/k.asc', gpg_passphrase_env: 'PASS', gpg_passphrase: '' }, ['password', 'gpg_key', 'gpg_passphrase']);
    expect(shown).toEqual({ username: 'u', password: MASK, gpg_key_file: '/k.asc', gpg_passphrase_env: 'PASS', gpg_passphrase: '' });
  });
});
