import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash, createPublicKey, randomUUID, sign } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** A real CNCF distribution (`docker-registry`) on a free loopback port with a temp root, optionally behind token auth. */
export interface Registry {
  host: string;
  url: string;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const s = netServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface TokenPolicy {
  /** user:password that gets push+pull on every repository. */
  user: string;
  password: string;
  /** Repositories anonymous clients may pull (prefix match). */
  anonymousPull: string[];
}

/** base32 (RFC 4648, no padding) of the first 240 bits of sha256(DER public key), in 4-char groups: libtrust's key id. */
function libtrustKid(derPublicKey: Buffer): string {
  const bytes = createHash('sha256').update(derPublicKey).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const b of bytes) bits += b.toString(2).padStart(8, '0');
  let out = '';
  for (let i = 0; i < bits.length; i += 5) out += alphabet[parseInt(bits.slice(i, i + 5), 2)];
  return out.match(/.{4}/g)!.join(':');
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/** A tiny token server (distribution's token auth spec) that signs RS256 JWTs with a key made at test time. */
async function startTokenServer(dir: string, policy: TokenPolicy) {
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'),
    '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=test-token']);
  const keyPem = await readFile(join(dir, 'key.pem'), 'utf8');
  const der = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
  const kid = libtrustKid(der);
  const requests: { user?: string; scope?: string }[] = [];
  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const auth = req.headers.authorization;
    let user: string | undefined;
    if (auth?.startsWith('Basic ')) {
      const [name, pass] = Buffer.from(auth.slice(6), 'base64').toString().split(':');
      if (name !== policy.user || pass !== policy.password) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
        return;
      }
      user = name;
    }
    const scopes = u.searchParams.getAll('scope');
    requests.push({ user, scope: scopes.join(' ') });
    const access = scopes.flatMap((s) => {
      const [type, name, actions] = s.split(':');
      const granted = user ? actions.split(',') : policy.anonymousPull.some((p) => name.startsWith(p)) ? ['pull'] : [];
      return granted.length ? [{ type, name, actions: granted }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', kid }));
    const claims = b64url(JSON.stringify({
      iss: 'test-issuer', sub: user ?? '', aud: u.searchParams.get('service'), exp: now + 300, nbf: now - 10, iat: now, jti: randomUUID(), access,
    }));
    const sig = sign('sha256', Buffer.from(`${header}.${claims}`), keyPem);
    const token = `${header}.${claims}.${b64url(sig)}`;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, access_token: token, expires_in: 300 }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}/token`, cert: join(dir, 'cert.pem'), requests, close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

export async function startRegistry(o: { token?: TokenPolicy } = {}): Promise<Registry & { tokenRequests?: { user?: string; scope?: string }[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'docker-registry-'));
  const port = await freePort();
  const token = o.token ? await startTokenServer(dir, o.token) : undefined;
  const auth = token ? `auth:
  token:
    realm: ${token.url}
    service: test-registry
    issuer: test-issuer
    rootcertbundle: ${token.cert}
` : '';
  await writeFile(join(dir, 'config.yml'), `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${join(dir, 'root')}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
${auth}`);
  const proc: ChildProcess = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => { stderr += String(d); });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      const r = await fetch(`${url}/v2/`);
      if (r.status === 200 || r.status === 401) break;
    } catch { /* not up yet */ }
    if (i > 100 || proc.exitCode !== null) throw new Error(`docker-registry did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  let closed = false;
  return {
    host: `127.0.0.1:${port}`,
    url,
    tokenRequests: token?.requests,
    async close() {
      if (closed) return;
      closed = true;
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      await token?.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
