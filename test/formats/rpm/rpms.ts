import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { expect } from 'vitest';
import { which } from '../../helpers/which.js';

export const HAVE_RPMBUILD = which('rpmbuild');
export const HAVE_CREATEREPO = which('createrepo_c');
export const HAVE_DNF = which('dnf');

const FIXTURES = join(import.meta.dirname, '../../../fixtures/rpm');

/** Builds every spec in fixtures/rpm with rpmbuild; returns file name -> bytes (noarch RPMs). */
export function buildFixtureRpms(dir: string): Map<string, Buffer> {
  const top = join(dir, 'rpmbuild');
  for (const spec of readdirSync(FIXTURES).filter((f) => f.endsWith('.spec'))) {
    execFileSync('rpmbuild', ['-bb', '--quiet', '--define', `_topdir ${top}`, join(FIXTURES, spec)], { stdio: 'pipe' });
  }
  const out = new Map<string, Buffer>();
  const rpms = join(top, 'RPMS', 'noarch');
  for (const f of readdirSync(rpms)) out.set(f, readFileSync(join(rpms, f)));
  return out;
}

export interface RefRepodata {
  repomd: string;
  xml: Record<'primary' | 'filelists' | 'other', string>;
}

/** createrepo_c's repodata for the same packages at the same paths: the reference. */
export function createrepo(dir: string, files: Map<string, Buffer>): RefRepodata {
  const repo = mkdtempSync(join(dir, 'ref-'));
  for (const [path, body] of files) {
    mkdirSync(join(repo, path, '..'), { recursive: true });
    writeFileSync(join(repo, path), body);
  }
  execFileSync('createrepo_c', ['-q', '--no-database', repo], { stdio: 'pipe' });
  const repomd = readFileSync(join(repo, 'repodata/repomd.xml'), 'utf8');
  const xml = {} as RefRepodata['xml'];
  for (const type of ['primary', 'filelists', 'other'] as const) {
    const href = new RegExp(`<data type="${type}">[\\s\\S]*?<location href="([^"]+)"`).exec(repomd)![1];
    xml[type] = gunzipSync(readFileSync(join(repo, href))).toString('utf8');
  }
  return { repomd, xml };
}

/** The <package> blocks of a repodata document, by pkgid (the checksum), each as its lines. */
export function packageBlocks(doc: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of doc.matchAll(/<package[ >][\s\S]*?<\/package>/g)) {
    const id = /pkgid="([0-9a-f]+)"/.exec(m[0])?.[1] ?? /<checksum type="sha256" pkgid="YES">([0-9a-f]+)</.exec(m[0])![1];
    // The file time is the file's mtime for createrepo_c and the upload time here.
    out.set(id, m[0].replace(/<time file="\d+"/, '<time file="T"').split('\n'));
  }
  return out;
}

/** dnf in its own install root, with one repo at `baseurl` (CLIENTS.md); async, as the server runs in this process. `repoConf`: more lines of the .repo file. */
export async function dnf(dir: string, baseurl: string, args: string[], repoConf = 'repo_gpgcheck=0\n'): Promise<string> {
  const repos = join(dir, 'repos.d');
  mkdirSync(repos, { recursive: true });
  writeFileSync(join(repos, 'test.repo'), `[test]\nname=test\nbaseurl=${baseurl}\ngpgcheck=0\nmetadata_expire=0\n${repoConf}`);
  const { stdout } = await promisify(execFile)('dnf', ['-y', '--noplugins', `--installroot=${join(dir, 'root')}`, `--setopt=reposdir=${repos}`,
    `--setopt=cachedir=${join(dir, 'cache')}`, '--releasever=1', '--disablerepo=*', '--enablerepo=test', ...args], { encoding: 'utf8', timeout: 120_000 });
  return stdout;
}

/** The sorted package locations of a primary.xml. */
export const locations = (primary: string) => [...primary.matchAll(/<location href="([^"]+)"/g)].map((m) => m[1]).sort();

/** A fake upstream's handler serving the files under `dir` (createrepo_c's output), 404 for the rest. */
export function serveDir(dir: string): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    try {
      const body = readFileSync(join(dir, decodeURIComponent((req.url ?? '/').split('?')[0])));
      res.writeHead(200, { 'content-length': body.length }).end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  };
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'artifactapi-rpm-'));
}


const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

export interface ServedRepodata { repomd: string; xml: Record<'primary' | 'filelists' | 'other', string>; hrefs: string[] }

/** Reads repodata as dnf does: repomd.xml, then each file it names, checked against its checksums and sizes. */
export async function readRepodata(url: string): Promise<ServedRepodata> {
  const res = await fetch(`${url}/repodata/repomd.xml`);
  expect(res.status).toBe(200);
  const repomd = await res.text();
  const xml = {} as ServedRepodata['xml'];
  const hrefs: string[] = [];
  for (const m of repomd.matchAll(/<data type="(\w+)">([\s\S]*?)<\/data>/g)) {
    const [, type, body] = m;
    const field = (name: string) => new RegExp(`<${name}[^>]*>([^<]+)</${name}>`).exec(body)![1];
    const href = /<location href="([^"]+)"/.exec(body)![1];
    hrefs.push(href);
    const gz = Buffer.from(await (await fetch(`${url}/${href}`)).arrayBuffer());
    const open = gunzipSync(gz);
    expect(sha(gz)).toBe(field('checksum'));
    expect(gz.length).toBe(Number(field('size')));
    expect(sha(open)).toBe(field('open-checksum'));
    expect(open.length).toBe(Number(field('open-size')));
    expect(href).toBe(`repodata/${sha(gz)}-${type}.xml.gz`);
    xml[type as keyof ServedRepodata['xml']] = open.toString('utf8');
  }
  expect(Object.keys(xml).sort()).toEqual(['filelists', 'other', 'primary']);
  return { repomd, xml, hrefs };
}

