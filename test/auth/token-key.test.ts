import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startServer } from '../helpers/server.js';

const dir = mkdtempSync(join(tmpdir(), 'artifactapi-token-key-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Whether a docker token from this server's /v2/token is signed (HS256) with exactly `key`. */
async function signedWith(flags: Record<string, unknown>, key: Buffer, env: NodeJS.ProcessEnv = {}): Promise<boolean> {
  const srv = await startServer(flags, { env });
  try {
    const res = await fetch(`${srv.url}/v2/token?service=artifactapi&scope=repository:x/y:pull`);
    expect(res.status).toBe(200);
    const [h, b, s] = ((await res.json()) as { token: string }).token.split('.');
    return createHmac('sha256', key).update(`${h}.${b}`).digest('base64url') === s;
  } finally {
    await srv.close();
  }
}

describe('auth.token_key: a secret as X / X_file / X_env; the file is read as bytes', () => {
  const text = 'a-token-signing-key-of-at-least-32-bytes';

  it('token_key_env and token_key sign with the text', async () => {
    expect(await signedWith({ 'auth.token_key_env': 'TK' }, Buffer.from(text), { TK: text })).toBe(true);
    expect(await signedWith({ 'auth.token_key': text }, Buffer.from(text))).toBe(true);
    expect(await signedWith({ 'auth.token_key': text }, Buffer.from(`${text}x`))).toBe(false);
  });

  it('token_key_file signs with the file\'s bytes, binary ones too, and wins over token_key', async () => {
    const bin = Buffer.concat([Buffer.from([0xff, 0xfe, 0x00, 0x0a]), randomBytes(32)]);
    const file = join(dir, 'token.key');
    writeFileSync(file, bin);
    expect(await signedWith({ 'auth.token_key_file': file }, bin)).toBe(true);
    expect(await signedWith({ 'auth.token_key_file': file, 'auth.token_key': text }, bin)).toBe(true);
  });

  it('a key under 32 bytes stops the start, naming the key and not the value', async () => {
    await expect(startServer({ 'auth.token_key': 'short-key' })).rejects.toThrow(/^auth\.token_key: a token signing key needs at least 32 bytes$/);
  });
});
