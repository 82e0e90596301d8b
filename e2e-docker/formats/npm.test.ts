import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tgz } from '../lib/archive.js';
import { run, scratch, which } from '../lib/clients.js';
import { clientCredentials, createRepo, deleteRepos, get, http, sha256hex, upstreamHits } from '../lib/api.js';
import { BASE, fixture, repoName, UPSTREAM_FOR_SERVER } from '../lib/env.js';

/**
 * npm: the registry protocol (packuments, tarballs, publish). Remote:
 * `fixtures/npm/e2e-tiny/index.json` is the packument the mock serves at
 * `/npm/e2e-tiny` (its dist.tarball is relative, so the remote fetches
 * `<upstream>/e2e-tiny/-/e2e-tiny-1.0.0.tgz`, made with `npm pack`).
 */
const ABBREVIATED = 'application/vnd.npm.install-v1+json';
const pathOf = (url: string) => new URL(url).pathname;

function pack(name: string, version: string): { file: string; data: Buffer; integrity: string; shasum: string } {
  const data = tgz({
    'package/package.json': JSON.stringify({ name, version, description: 'e2e publish', main: 'index.js', license: 'MIT' }, null, 2),
    'package/index.js': `module.exports = ${JSON.stringify(`${name}@${version} ${Date.now()}`)};\n`,
  });
  const base = name.startsWith('@') ? name.slice(name.indexOf('/') + 1) : name;
  return {
    file: `${base}-${version}.tgz`,
    data,
    integrity: `sha512-${createHash('sha512').update(data).digest('base64')}`,
    shasum: createHash('sha1').update(data).digest('hex'),
  };
}

/** The body `npm publish` PUTs to /<name>: the packument with the new version and the tarball as a base64 attachment. */
function publishBody(name: string, version: string, p: ReturnType<typeof pack>, tag = 'latest') {
  return {
    _id: name,
    name,
    description: 'e2e publish',
    'dist-tags': { [tag]: version },
    versions: {
      [version]: {
        name, version, description: 'e2e publish', main: 'index.js', license: 'MIT', _id: `${name}@${version}`,
        dist: { integrity: p.integrity, shasum: p.shasum, tarball: `http://registry.invalid/${name}/-/${p.file}` },
      },
    },
    access: null,
    _attachments: { [p.file]: { content_type: 'application/octet-stream', data: p.data.toString('base64'), length: p.data.length } },
  };
}

const escName = (name: string) => (name.startsWith('@') ? `@${encodeURIComponent(name.slice(1))}` : name);
const publish = (repo: string, name: string, version: string, p: ReturnType<typeof pack>) =>
  http('PUT', `/${repo}/${escName(name)}`, { body: publishBody(name, version, p), headers: { 'npm-command': 'publish' } });

describe('npm', () => {
  const local = repoName('npm-local');
  const remote = repoName('npm-remote');
  const virtual = repoName('npm-virtual');
  const tarball = 'e2e-tiny-1.0.0.tgz';
  const expected = fixture(`npm/e2e-tiny/-/${tarball}`);
  const upstreamPath = `/npm/e2e-tiny/-/${tarball}`;

  beforeAll(async () => {
    await createRepo({ name: local, format: 'npm', kind: 'local' });
    await createRepo({ name: remote, format: 'npm', kind: 'remote', upstream: `${UPSTREAM_FOR_SERVER}/npm/` });
    // A local member's package hides the remote's by default (dependency confusion); allow_shadowed merges them.
    await createRepo({ name: virtual, format: 'npm', kind: 'virtual', members: [local, remote], default_local: local, allow_shadowed: ['e2e-tiny'] });
  });
  afterAll(async () => deleteRepos([virtual, remote, local]));

  it('remote: the packument points tarballs here; the tarball comes from the upstream, then the cache', async () => {
    const doc = await get(`/${remote}/e2e-tiny`);
    expect(doc.status).toBe(200);
    expect(doc.headers.get('x-artifact-repo')).toBe(remote);
    const j = doc.json();
    expect(j['dist-tags'].latest).toBe('1.0.0');
    const dist = j.versions['1.0.0'].dist;
    expect(pathOf(dist.tarball)).toBe(`/${remote}/e2e-tiny/-/${tarball}`);
    expect(dist.integrity).toBe(`sha512-${createHash('sha512').update(expected).digest('base64')}`);

    const abbr = await get(`/${remote}/e2e-tiny`, { accept: `${ABBREVIATED}; q=1.0, application/json; q=0.8, */*` });
    expect(abbr.status).toBe(200);
    expect(abbr.headers.get('content-type')).toContain(ABBREVIATED);
    expect(Object.keys(abbr.json().versions)).toEqual(['1.0.0']);
    expect((await get(`/${remote}/e2e-tiny/latest`)).json().version).toBe('1.0.0');

    const before = await upstreamHits(upstreamPath);
    const first = await get(pathOf(dist.tarball));
    expect(first.status).toBe(200);
    expect(first.headers.get('x-artifact-source')).toBe('remote');
    expect(first.headers.get('x-artifact-repo')).toBe(remote);
    expect(first.body.equals(expected)).toBe(true);

    const second = await get(pathOf(dist.tarball));
    expect(second.status).toBe(200);
    expect(second.headers.get('x-artifact-source')).toBe('cache');
    expect(second.headers.get('etag')).toBe(`"${sha256hex(expected)}"`);
    expect(second.body.equals(expected)).toBe(true);
    expect(await upstreamHits(upstreamPath)).toBe(before + 1);

    const miss = await get(`/${remote}/no-such-package`);
    expect(miss.status).toBe(404);
    expect(miss.json().error).toBeTruthy();
  });

  it('local: publish (PUT with _attachments), then packument and tarball; republishing a version is refused', async () => {
    const name = '@e2e/local-pkg';
    const p = pack(name, '1.0.0');
    const put = await publish(local, name, '1.0.0', p);
    expect(put.status).toBe(201);
    expect(put.json().ok).toBe(true);

    const doc = await get(`/${local}/${escName(name)}`);
    expect(doc.status).toBe(200);
    expect(doc.headers.get('x-artifact-source')).toBe('local');
    const j = doc.json();
    expect(j.name).toBe(name);
    expect(j['dist-tags'].latest).toBe('1.0.0');
    const dist = j.versions['1.0.0'].dist;
    expect(pathOf(dist.tarball)).toBe(`/${local}/@e2e/local-pkg/-/${p.file}`);
    expect(dist.integrity).toBe(p.integrity);
    expect(dist.shasum).toBe(p.shasum);

    const tgzGet = await get(pathOf(dist.tarball));
    expect(tgzGet.status).toBe(200);
    expect(tgzGet.headers.get('x-artifact-source')).toBe('local');
    expect(tgzGet.headers.get('x-artifact-repo')).toBe(local);
    expect(tgzGet.body.equals(p.data)).toBe(true);

    const again = await publish(local, name, '1.0.0', pack(name, '1.0.0'));
    expect([403, 409]).toContain(again.status);
    expect((await get(pathOf(dist.tarball))).body.equals(p.data)).toBe(true);

    const wrong = pack(name, '1.0.1');
    const bad = await http('PUT', `/${local}/${escName(name)}`, {
      body: { ...publishBody(name, '1.0.1', wrong), _attachments: { [wrong.file]: { data: Buffer.from('not the tarball').toString('base64') } } },
    });
    expect(bad.status).toBe(400);
    expect(Object.keys((await get(`/${local}/${escName(name)}`)).json().versions)).toEqual(['1.0.0']);

    // Remote repos take no publishes.
    expect((await publish(remote, name, '1.0.0', p)).status).toBe(405);
  });

  it('virtual: one merged packument over the local and the remote member; publishes land in default_local', async () => {
    const p = pack('e2e-tiny', '2.0.0');
    const put = await publish(virtual, 'e2e-tiny', '2.0.0', p);
    expect(put.status).toBe(201);
    expect((await get(`/${local}/e2e-tiny`)).json().versions['2.0.0']).toBeTruthy();

    const doc = await get(`/${virtual}/e2e-tiny`);
    expect(doc.status).toBe(200);
    expect(doc.headers.get('x-artifact-repo')).toBe(virtual);
    const j = doc.json();
    expect(Object.keys(j.versions).sort()).toEqual(['1.0.0', '2.0.0']);
    expect(j['dist-tags'].latest).toBe('2.0.0');

    const mine = await get(pathOf(j.versions['2.0.0'].dist.tarball));
    expect(mine.status).toBe(200);
    expect(mine.headers.get('x-artifact-repo')).toBe(local);
    expect(mine.body.equals(p.data)).toBe(true);

    const theirs = await get(pathOf(j.versions['1.0.0'].dist.tarball));
    expect(pathOf(j.versions['1.0.0'].dist.tarball)).toBe(`/${virtual}/e2e-tiny/-/${tarball}`);
    expect(theirs.status).toBe(200);
    expect(theirs.headers.get('x-artifact-repo')).toBe(remote);
    expect(theirs.body.equals(expected)).toBe(true);

    // The local member alone knows only its own version.
    expect(Object.keys((await get(`/${local}/e2e-tiny`)).json().versions)).toEqual(['2.0.0']);
    expect((await get(`/${virtual}/e2e-tiny/-/e2e-tiny-9.9.9.tgz`)).status).toBe(404);
  });

  it.skipIf(!which('npm'))('real client: npm publish to the local repo, npm install from the remote and the local through the virtual', async () => {
    const { token } = await clientCredentials();
    const tmp = scratch('npm');
    try {
      // Its own userconfig and cache (CLIENTS.md); publish sends a token: a real one of the stack's.
      const npmrc = join(tmp.dir, '.npmrc');
      const host = BASE.replace(/^https?:/, '');
      writeFileSync(npmrc, `${host}/${local}/:_authToken=${token}\n${host}/${virtual}/:_authToken=${token}\n`);
      const npm = (args: string[], cwd: string) =>
        run('npm', [...args, '--userconfig', npmrc, '--cache', join(tmp.dir, 'cache'), '--no-audit', '--no-fund', '--ignore-scripts'], { cwd });

      const pkg = join(tmp.dir, 'pkg');
      mkdirSync(pkg);
      writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'e2e-npm-cli', version: '0.1.0', main: 'index.js', license: 'MIT' }));
      writeFileSync(join(pkg, 'index.js'), 'module.exports = "published by npm";\n');
      npm(['publish', '--registry', `${BASE}/${local}/`], pkg);

      const app = join(tmp.dir, 'app');
      mkdirSync(app);
      writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
      npm(['install', '--registry', `${BASE}/${virtual}/`, 'e2e-tiny@1.0.0', 'e2e-npm-cli@0.1.0'], app);
      expect(readFileSync(join(app, 'node_modules/e2e-tiny/index.js'), 'utf8')).toBe('module.exports = 42;\n');
      expect(readFileSync(join(app, 'node_modules/e2e-npm-cli/index.js'), 'utf8')).toBe('module.exports = "published by npm";\n');
      const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8'));
      expect(lock.packages['node_modules/e2e-tiny'].integrity).toBe(`sha512-${createHash('sha512').update(expected).digest('base64')}`);
    } finally {
      tmp.done();
    }
  });
});
