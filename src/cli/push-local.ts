import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { basename } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApiClient } from './api-client.js';
import type { Command } from 'commander';

export interface PushItem {
  file: string;
  /** Path inside the repo. */
  path: string;
  size: number;
  sent: number;
  state: 'waiting' | 'sending' | 'done' | 'failed';
  sha256?: string;
}

export interface PushResult {
  file: string;
  repo: string;
  path: string;
  url: string;
  size: number;
  sha256: string;
}

/** Where each file goes: one file with --path P lands at P (or P/basename when P ends in /); several go under P/. */
export function targetPaths(files: string[], prefix?: string): string[] {
  const trimmed = prefix?.replace(/^\/+/, '');
  if (!trimmed) return files.map((f) => basename(f));
  if (files.length === 1 && !trimmed.endsWith('/')) return [trimmed];
  const dir = trimmed.replace(/\/+$/, '');
  return files.map((f) => `${dir}/${basename(f)}`);
}

const serverUrl = (url?: string) => (url ?? process.env.ARTIFACTAPI_URL ?? 'http://127.0.0.1:8000').replace(/\/+$/, '');
const encodePath = (p: string) => p.split('/').map(encodeURIComponent).join('/');

/**
 * Streams one file to PUT url, hashing the bytes as they leave (the file is read once).
 * Resolves with the server's JSON answer and the local sha256.
 */
export async function putFile(url: string, file: string, size: number, onBytes: (n: number) => void, authorization?: string): Promise<{ answer: Record<string, unknown>; sha256: string }> {
  const u = new URL(url);
  const hash = createHash('sha256');
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
  const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, {
    method: 'PUT',
    headers: {
      'content-type': 'application/octet-stream', 'content-length': String(size), accept: 'application/json',
      ...(authorization ? { authorization } : {}),
    },
  });
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  // The server may answer (405, 404...) before reading the body; then the answer is what matters.
  const sending = pipeline(createReadStream(file, { highWaterMark: 256 * 1024 }), tap, req).catch((err) => err as Error);
  let res: IncomingMessage;
  try {
    res = await response;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH'
      ? `cannot reach ${u.origin} (${code}); is \`artifactapi serve\` running? (--url or ARTIFACTAPI_URL)`
      : `${file}: upload failed (${code ?? (err as Error).message})`);
  }
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = text;
  }
  const status = res.statusCode ?? 0;
  if (status < 200 || status >= 300) {
    const e = (body as { error?: { message?: string } | string } | undefined)?.error;
    const msg = typeof e === 'string' ? e : e?.message ?? (typeof body === 'string' && body ? body.trim().split('\n')[0] : `HTTP ${status}`);
    req.destroy();
    throw new Error(`${file}: ${msg} (HTTP ${status})`);
  }
  const sendErr = await sending;
  if (sendErr) throw new Error(`${file}: upload failed (${(sendErr as NodeJS.ErrnoException).code ?? sendErr.message})`);
  if (!body || typeof body !== 'object') throw new Error(`${file}: the server did not answer with JSON (HTTP ${status})`);
  return { answer: body as Record<string, unknown>, sha256: hash.digest('hex') };
}

export interface PushOptions {
  repo: string;
  files: string[];
  path?: string;
  url?: string;
  /** API token (default $ARTIFACTAPI_TOKEN). */
  token?: string;
  /** Called as items progress (the TTY view re-renders from it). */
  onUpdate?: (items: PushItem[]) => void;
  /** Called when a file is stored and checked. */
  onDone?: (r: PushResult) => void;
}

/** Uploads files one after another; stops at the first failure (thrown as a one-line Error). */
export async function pushLocal(o: PushOptions): Promise<PushResult[]> {
  const base = serverUrl(o.url);
  // The same credentials as every other command (a token, or on the host the admin password file).
  const authorization = ApiClient.from(base, o.token).authorization;
  const paths = targetPaths(o.files, o.path);
  const items: PushItem[] = [];
  for (const [i, file] of o.files.entries()) {
    let st;
    try {
      st = await stat(file);
    } catch (err) {
      throw new Error(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    if (!st.isFile()) throw new Error(`${file}: not a regular file`);
    items.push({ file, path: paths[i], size: st.size, sent: 0, state: 'waiting' });
  }
  const results: PushResult[] = [];
  for (const item of items) {
    item.state = 'sending';
    o.onUpdate?.(items);
    const url = `${base}/${encodeURIComponent(o.repo)}/${encodePath(item.path)}`;
    try {
      const { answer, sha256 } = await putFile(url, item.file, item.size, (n) => {
        item.sent += n;
        o.onUpdate?.(items);
      }, authorization);
      const stored = String(answer.sha256 ?? String(answer.digest ?? '').replace(/^sha256:/, ''));
      if (stored !== sha256) {
        throw new Error(`${item.file}: sha256 mismatch: sent ${sha256}, server stored ${stored || '(none reported)'}`);
      }
      item.state = 'done';
      item.sha256 = stored;
      const r: PushResult = { file: item.file, repo: String(answer.repo ?? o.repo), path: String(answer.path ?? item.path), url, size: Number(answer.size ?? item.size), sha256: stored };
      results.push(r);
      o.onUpdate?.(items);
      o.onDone?.(r);
    } catch (err) {
      item.state = 'failed';
      o.onUpdate?.(items);
      throw err;
    }
  }
  return results;
}

export function pushLocalCommand(program: Command): void {
  program
    .command('push-local <repo> <files...>')
    .description('upload files into a local repository (generic layout), with progress; prints the stored sha256')
    .option('--path <p>', 'path in the repo (several files: a directory prefix); default: the file name')
    .option('--url <server>', 'server URL (default $ARTIFACTAPI_URL or http://127.0.0.1:8000)')
    .option('--token <token>', 'API token (default $ARTIFACTAPI_TOKEN)')
    .option('--json', 'machine-readable output')
    .action(async (repo: string, files: string[], o: { path?: string; url?: string; token?: string; json?: boolean }) => {
      // ink only on a terminal wide enough to draw a bar; pipes and CI get one plain line per file.
      if (!o.json && process.stdout.isTTY && (process.stdout.columns ?? 0) >= 40) {
        const { pushWithProgress } = await import('./ui/push-progress.js');
        await pushWithProgress({ repo, files, path: o.path, url: o.url, token: o.token });
        return;
      }
      const results = await pushLocal({
        repo, files, path: o.path, url: o.url, token: o.token,
        onDone: o.json ? undefined : (r) => process.stdout.write(`${r.sha256}  ${r.repo}/${r.path}  ${r.size} bytes\n`),
      });
      if (o.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    });
}
