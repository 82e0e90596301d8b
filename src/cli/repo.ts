import type { Command } from 'commander';
import { ApiClient } from './api-client.js';
import { table } from './table.js';

type Repo = { name: string; format: string; kind: string; upstream?: string; members?: string[]; options?: Record<string, unknown> };

function print(json: boolean, value: unknown, text: () => string): void {
  process.stdout.write(`${json ? JSON.stringify(value, null, 2) : text()}\n`);
}

export function repoCommand(program: Command): void {
  const repo = program.command('repo').description('manage repositories on a running server');
  const common = (c: Command) => c.option('--url <server>', 'server URL (default $ARTIFACTAPI_URL or http://127.0.0.1:8000)').option('--json', 'machine-readable output');

  common(repo.command('add <name>').description('create a repository'))
    .requiredOption('--format <format>', 'generic, docker, helm, pypi, npm, rpm, alpine, puppet, terraform, goproxy')
    .requiredOption('--kind <kind>', 'local, remote or virtual')
    .option('--upstream <url>', 'remote: upstream URL (user:pass@ userinfo becomes stored credentials)')
    .option('--member <name>', 'virtual: a member repo, in order (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--default-local <name>', 'virtual: the local member that receives writes')
    .option('--set <key=value>', 'any other repo option (repeatable), e.g. metadata_ttl=10m', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .action(async (name: string, o: { format: string; kind: string; upstream?: string; member: string[]; defaultLocal?: string; set: string[]; url?: string; json?: boolean }) => {
      const body: Record<string, unknown> = { name, format: o.format, kind: o.kind };
      if (o.upstream) body.upstream = o.upstream;
      if (o.member.length) body.members = o.member;
      if (o.defaultLocal) body.default_local = o.defaultLocal;
      for (const kv of o.set) {
        const eq = kv.indexOf('=');
        if (eq < 1) throw new Error(`--set expects key=value, got "${kv}"`);
        body[kv.slice(0, eq)] = kv.slice(eq + 1);
      }
      const created = await ApiClient.from(o.url).request<Repo>('POST', '/api/v1/repositories', body);
      print(!!o.json, created, () => `created ${created.kind} ${created.format} repository "${created.name}"`);
    });

  common(repo.command('list').description('list repositories')).action(async (o: { url?: string; json?: boolean }) => {
    const repos = await ApiClient.from(o.url).request<Repo[]>('GET', '/api/v1/repositories');
    print(!!o.json, repos, () => table(repos.map((r) => ({ ...r, upstream: r.upstream ?? '', members: r.members ?? [] })), ['name', 'format', 'kind', 'upstream', 'members']));
  });

  common(repo.command('show <name>').description('show one repository')).action(async (name: string, o: { url?: string; json?: boolean }) => {
    const r = await ApiClient.from(o.url).request<Repo>('GET', `/api/v1/repositories/${encodeURIComponent(name)}`);
    print(!!o.json, r, () => Object.entries(r).map(([k, v]) => `${k.padEnd(10)} ${typeof v === 'object' ? JSON.stringify(v) : v}`).join('\n'));
  });

  common(repo.command('remove <name>').description('delete a repository and its rows (blobs go at the next gc)')).action(async (name: string, o: { url?: string; json?: boolean }) => {
    await ApiClient.from(o.url).request('DELETE', `/api/v1/repositories/${encodeURIComponent(name)}`);
    print(!!o.json, { removed: name }, () => `removed repository "${name}"`);
  });
}
