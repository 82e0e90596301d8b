import type { Command } from 'commander';
import { ApiClient } from './api-client.js';
import { table } from './table.js';

type Repo = { name: string; format: string; kind: string; upstream?: string; members?: string[]; options?: Record<string, unknown> };

const repeat = (v: string, acc: string[]) => [...acc, v];

/** `--set key=value`s as an object (values stay strings: the server coerces and validates them by key). */
function parseSets(sets: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of sets) {
    const eq = kv.indexOf('=');
    if (eq < 1) throw new Error(`--set expects key=value, got "${kv}"`);
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}

function print(json: boolean, value: unknown, text: () => string): void {
  process.stdout.write(`${json ? JSON.stringify(value, null, 2) : text()}\n`);
}

export function repoCommand(program: Command): void {
  const repo = program.command('repo').description('manage repositories on a running server');
  const common = (c: Command) => c.option('--url <server>', 'server URL (default $ARTIFACTAPI_URL or http://127.0.0.1:8000)')
    .option('--token <token>', 'API token (default $ARTIFACTAPI_TOKEN)').option('--json', 'machine-readable output');

  common(repo.command('add <name>').description('create a repository'))
    .requiredOption('--format <format>', 'generic, docker, helm, pypi, npm, rpm, alpine, puppet, terraform, goproxy')
    .requiredOption('--kind <kind>', 'local, remote or virtual')
    .option('--upstream <url>', 'remote: upstream URL (user:pass@ userinfo becomes stored credentials)')
    .option('--member <name>', 'virtual: a member repo, in order (repeatable)', repeat, [] as string[])
    .option('--default-local <name>', 'virtual: the local member that receives writes')
    .option('--set <key=value>', 'any other repo option (repeatable), e.g. metadata_ttl=10m', repeat, [] as string[])
    .action(async (name: string, o: { format: string; kind: string; upstream?: string; member: string[]; defaultLocal?: string; set: string[]; url?: string; token?: string; json?: boolean }) => {
      const body: Record<string, unknown> = { name, format: o.format, kind: o.kind };
      if (o.upstream) body.upstream = o.upstream;
      if (o.member.length) body.members = o.member;
      if (o.defaultLocal) body.default_local = o.defaultLocal;
      Object.assign(body, parseSets(o.set));
      const created = await ApiClient.from(o.url, o.token).request<Repo>('POST', '/api/v1/repositories', body);
      print(!!o.json, created, () => `created ${created.kind} ${created.format} repository "${created.name}"`);
    });

  common(repo.command('update <name>').description('change keys of a repository; the others keep their values'))
    .option('--set <key=value>', 'a key to change (repeatable), e.g. metadata_ttl=10m or upstream=URL', repeat, [] as string[])
    .action(async (name: string, o: { set: string[]; url?: string; token?: string; json?: boolean }) => {
      const sets = parseSets(o.set);
      if (Object.keys(sets).length === 0) throw new Error('nothing to update: give --set key=value');
      const api = ApiClient.from(o.url, o.token);
      const path = `/api/v1/repositories/${encodeURIComponent(name)}`;
      const cur = await api.request<Repo>('GET', path);
      // The API replaces the whole definition. The stored password comes back masked: leave the
      // credentials out, so the server keeps them (unless this update sets them).
      const options = { ...cur.options };
      if (options.password !== undefined) {
        delete options.password;
        delete options.username;
      }
      const body = { format: cur.format, kind: cur.kind, upstream: cur.upstream, members: cur.members, ...options, ...sets, name };
      const updated = await api.request<Repo>('PUT', path, body);
      print(!!o.json, updated, () => `updated ${updated.kind} ${updated.format} repository "${updated.name}": ${Object.keys(sets).join(', ')}`);
    });

  common(repo.command('list').description('list repositories')).action(async (o: { url?: string; token?: string; json?: boolean }) => {
    const repos = await ApiClient.from(o.url, o.token).request<Repo[]>('GET', '/api/v1/repositories');
    print(!!o.json, repos, () => table(repos.map((r) => ({ ...r, upstream: r.upstream ?? '', members: r.members ?? [] })), ['name', 'format', 'kind', 'upstream', 'members']));
  });

  common(repo.command('show <name>').description('show one repository')).action(async (name: string, o: { url?: string; token?: string; json?: boolean }) => {
    const r = await ApiClient.from(o.url, o.token).request<Repo>('GET', `/api/v1/repositories/${encodeURIComponent(name)}`);
    print(!!o.json, r, () => Object.entries(r).map(([k, v]) => `${k.padEnd(10)} ${typeof v === 'object' ? JSON.stringify(v) : v}`).join('\n'));
  });

  common(repo.command('remove <name>').description('delete a repository and its rows (blobs go at the next gc)')).action(async (name: string, o: { url?: string; token?: string; json?: boolean }) => {
    await ApiClient.from(o.url, o.token).request('DELETE', `/api/v1/repositories/${encodeURIComponent(name)}`);
    print(!!o.json, { removed: name }, () => `removed repository "${name}"`);
  });
}
