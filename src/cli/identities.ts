import type { Command } from 'commander';
import { expiryOf } from '../auth/api.js';
import { checkUserName, parseActions, publicToken, publicUser } from '../auth/auth.js';
import { randomPassword } from '../auth/secrets.js';
import { ApiClient } from './api-client.js';
import { withServices } from './maintenance.js';
import { table } from './table.js';

interface Where { url?: string; token?: string; config?: string; dataDir?: string; json?: boolean }
type Rec = Record<string, unknown>;

/**
 * Through the API (`--url`, `--token`) by default; straight on the stores with `--data-dir` or
 * `--config`, as gc does (the host's way in: the first user, a lost admin password).
 */
const direct = (o: Where) => o.dataDir !== undefined || o.config !== undefined;

function options(c: Command): Command {
  return c
    .option('--url <server>', 'server URL (default $ARTIFACTAPI_URL or http://127.0.0.1:8000)')
    .option('--token <token>', 'API token of an admin (default $ARTIFACTAPI_TOKEN)')
    .option('--data-dir <dir>', 'work on this data directory instead of a server (as gc does)')
    .option('--config <file>', 'work on the stores of this config instead of a server')
    .option('--json', 'machine-readable output');
}

const out = (json: boolean | undefined, value: unknown, text: () => string) => process.stdout.write(`${json ? JSON.stringify(value, null, 2) : text()}\n`);

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

const repeat = (v: string, acc: string[]) => [...acc, v];

export function identityCommands(program: Command): void {
  const user = program.command('user').description('users (admin)');

  options(user.command('add <name>').description('create a user; prints a generated password unless --password-stdin'))
    .option('--admin', 'the user may administer everything')
    .option('--password-stdin', 'read the password from stdin')
    .action(async (name: string, o: Where & { admin?: boolean; passwordStdin?: boolean }) => {
      const given = o.passwordStdin ? await readStdin() : undefined;
      let made: Rec;
      if (direct(o)) {
        checkUserName(name);
        const password = given ?? randomPassword();
        made = await withServices(o, async (svc) => ({ ...publicUser(await svc.auth.addUser(name, password, !!o.admin)), ...(given === undefined ? { password } : {}) }));
      } else {
        made = await ApiClient.from(o.url, o.token).request<Rec>('POST', '/api/v1/users', { name, admin: !!o.admin, ...(given !== undefined ? { password: given } : {}) });
      }
      out(o.json, made, () => `created user "${name}"${made.password ? `\npassword: ${String(made.password)}` : ''}`);
    });

  options(user.command('list').description('list users')).action(async (o: Where) => {
    const users = direct(o)
      ? await withServices(o, async (svc) => (await svc.auth.store.users.list()).map(publicUser))
      : await ApiClient.from(o.url, o.token).request<Rec[]>('GET', '/api/v1/users');
    out(o.json, users, () => (users.length ? table(users.map((u) => ({ name: String(u.name), admin: u.admin ? 'yes' : '', created: String(u.createdAt) })), ['name', 'admin', 'created']) : 'no users'));
  });

  options(user.command('remove <name>').description('delete a user, its tokens and its grants')).action(async (name: string, o: Where) => {
    if (direct(o)) {
      const gone = await withServices(o, (svc) => svc.auth.store.users.remove(name));
      if (!gone) throw new Error(`no user named "${name}"`);
    } else await ApiClient.from(o.url, o.token).request('DELETE', `/api/v1/users/${encodeURIComponent(name)}`);
    out(o.json, { removed: name }, () => `removed user "${name}"`);
  });

  options(user.command('passwd <name>').description('set a user\'s password; prints a generated one unless --password-stdin'))
    .option('--password-stdin', 'read the password from stdin')
    .action(async (name: string, o: Where & { passwordStdin?: boolean }) => {
      const given = o.passwordStdin ? await readStdin() : undefined;
      const password = given ?? randomPassword();
      if (direct(o)) await withServices(o, (svc) => svc.auth.setPassword(name, password));
      else await ApiClient.from(o.url, o.token).request('PUT', `/api/v1/users/${encodeURIComponent(name)}/password`, { password });
      out(o.json, { user: name, ...(given === undefined ? { password } : {}) }, () => `password of "${name}" changed${given === undefined ? `\npassword: ${password}` : ''}`);
    });

  const token = program.command('token').description('API tokens');

  options(token.command('create').description('make an API token; it is shown once'))
    .option('--user <name>', 'owner (default: the caller; on a data dir: admin)')
    .option('--repo <pattern>', 'narrow to repos matching this pattern (repeatable)', repeat, [] as string[])
    .option('--actions <list>', 'narrow to these actions: read,write,delete,admin')
    .option('--expires <when>', 'a duration (30d) or a date')
    .option('--description <text>', 'what the token is for')
    .action(async (o: Where & { user?: string; repo: string[]; actions?: string; expires?: string; description?: string }) => {
      const body = { user: o.user, repos: o.repo.length ? o.repo : undefined, actions: o.actions ? parseActions(o.actions) : undefined, expires: o.expires, description: o.description };
      let made: Rec;
      if (direct(o)) {
        made = await withServices(o, async (svc) => {
          const { rec, secret } = await svc.auth.createToken(o.user ?? 'admin', { repos: body.repos, actions: body.actions, expiresAt: expiryOf(o.expires), description: o.description });
          return { ...publicToken(rec), token: secret };
        });
      } else made = await ApiClient.from(o.url, o.token).request<Rec>('POST', '/api/v1/tokens', body);
      out(o.json, made, () => `token ${String(made.id)} for "${String(made.user)}" (shown once):\n${String(made.token)}`);
    });

  options(token.command('list').description('list tokens (never their secrets)'))
    .option('--user <name>', 'only this user\'s')
    .action(async (o: Where & { user?: string }) => {
      const list = direct(o)
        ? await withServices(o, async (svc) => (await svc.auth.store.tokens.list(o.user)).map(publicToken))
        : await ApiClient.from(o.url, o.token).request<Rec[]>('GET', `/api/v1/tokens${o.user ? `?user=${encodeURIComponent(o.user)}` : ''}`);
      out(o.json, list, () => (list.length ? table(list.map((t) => ({
        id: String(t.id), user: String(t.user), repos: (t.repos as string[] | null)?.join(',') ?? '*', actions: (t.actions as string[] | null)?.join(',') ?? '*',
        expires: String(t.expiresAt ?? 'never'), description: String(t.description ?? ''),
      })), ['id', 'user', 'repos', 'actions', 'expires', 'description']) : 'no tokens'));
    });

  options(token.command('revoke <id>').description('revoke a token at once')).action(async (id: string, o: Where) => {
    if (direct(o)) {
      if (!(await withServices(o, (svc) => svc.auth.store.tokens.remove(id)))) throw new Error(`no token with id "${id}"`);
    } else await ApiClient.from(o.url, o.token).request('DELETE', `/api/v1/tokens/${encodeURIComponent(id)}`);
    out(o.json, { revoked: id }, () => `revoked token ${id}`);
  });

  const perm = program.command('perm').description('permissions: what a user (or anonymous) may do on repos matching a pattern');

  options(perm.command('grant <subject> <pattern> <actions>').description('grant actions (read,write,delete,admin) to USER or anonymous on REPO_PATTERN'))
    .action(async (subject: string, pattern: string, actions: string, o: Where) => {
      const list = parseActions(actions);
      if (direct(o)) {
        await withServices(o, async (svc) => {
          if (subject !== 'anonymous' && !(await svc.auth.store.users.get(subject))) throw new Error(`no user named "${subject}"`);
          await svc.auth.store.grants.put({ subject, pattern, actions: list, createdAt: Date.now() });
        });
      } else await ApiClient.from(o.url, o.token).request('POST', '/api/v1/permissions', { subject, pattern, actions: list });
      out(o.json, { subject, pattern, actions: list }, () => `granted ${list.join(',')} on ${pattern} to ${subject}`);
    });

  options(perm.command('revoke <subject> <pattern>').description('remove a grant')).action(async (subject: string, pattern: string, o: Where) => {
    if (direct(o)) {
      if (!(await withServices(o, (svc) => svc.auth.store.grants.remove(subject, pattern)))) throw new Error(`no grant for ${subject} on ${pattern}`);
    } else await ApiClient.from(o.url, o.token).request('DELETE', `/api/v1/permissions?subject=${encodeURIComponent(subject)}&pattern=${encodeURIComponent(pattern)}`);
    out(o.json, { subject, pattern }, () => `revoked ${subject} on ${pattern}`);
  });

  options(perm.command('list').description('list grants')).action(async (o: Where) => {
    const list = direct(o)
      ? await withServices(o, async (svc) => (await svc.auth.store.grants.list()).map((g) => ({ subject: g.subject, pattern: g.pattern, actions: g.actions })))
      : await ApiClient.from(o.url, o.token).request<Rec[]>('GET', '/api/v1/permissions');
    out(o.json, list, () => (list.length ? table(list.map((g) => ({ subject: String(g.subject), pattern: String(g.pattern), actions: (g.actions as string[]).join(',') })), ['subject', 'pattern', 'actions']) : 'no grants'));
  });
}
