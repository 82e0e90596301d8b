import { gunzipSync } from 'node:zlib';
import { sha256 } from '../../lib/digest.js';
import { AppError } from '../../lib/errors.js';
import { collect } from '../../lib/streams.js';
import type { DerivedDoc } from '../../repos/derived.js';
import type { Services } from '../../repos/services.js';
import type { Served } from '../../repos/types.js';
import { byLeafKind, shadowing } from '../../repos/resolve.js';
import { allLeaves, type Leaf } from '../../repos/virtual.js';
import type { FileRec, RepoDef } from '../../storage/meta/types.js';
import { cachedPrimaryChecksums, remoteRepodataFile, remoteRepomd, repomdChecksums } from './remote.js';
import { withSignature } from './sign.js';
import { localRepodata, renderRepomd, REPOMD_PATH, XML_TYPE, xmlDoc, type XmlType } from './repodata.js';

/** Cap on one uncompressed repodata document read for merging (a distribution's filelists runs to a few hundred MiB). */
const MERGE_MAX = 512 * 1024 * 1024;

/** A leaf (local or remote repo) under a virtual repo, with its repodata. */
interface LeafRepodata {
  /** The member names from the virtual repo down to this leaf, each with a slash: where its packages are served. */
  prefix: string;
  repomd: Buffer;
  /** primary, filelists or other, uncompressed (read only when needed). */
  xml(type: XmlType): Promise<string>;
  /** Package names it must not offer (the dependency-confusion rule, at every level it lies under). */
  hidden: Set<string>;
}

/** A leaf's repomd.xml and a reader of what it names. */
async function leafRepodata(svc: Services, repo: RepoDef): Promise<LeafRepodata> {
  const { repomd, read } = await byLeafKind<Promise<{ repomd: Buffer; read: (href: string) => Promise<Served> }>>(repo, {
    remote: async (r) => ({ repomd: (await remoteRepomd(svc, r)).body, read: (href) => remoteRepodataFile(svc, r, href) }),
    local: async (r) => ({
      repomd: await collect(await svc.blob.read((await svc.derived.current(svc, r, localRepodata)).digest)),
      read: async (href) => {
        const f = await svc.meta.files.get(r.name, href);
        if (!f) throw new AppError('UPSTREAM_FAILED', `${r.name}: ${href} is missing`);
        return { rec: f, source: 'local', servedBy: r.name, size: f.size };
      },
    }),
  });
  const named = [...repomdChecksums(repomd.toString('utf8'))];
  const readXml = async (type: XmlType) => {
    const href = named.find(([, s]) => s.type === type)?.[0];
    if (!href) throw new AppError('UPSTREAM_FAILED', `${repo.name}: repomd.xml names no ${type}`);
    if (!href.endsWith('.gz')) throw new AppError('UPSTREAM_FAILED', `${repo.name}: ${href}: only gzip repodata can be merged`);
    const served = await read(href);
    const gz = await collect(served.body ?? (await svc.blob.read(served.rec.digest)), { max: MERGE_MAX, what: href });
    return gunzipSync(gz, { maxOutputLength: MERGE_MAX }).toString('utf8');
  };
  // Shadowing at every level and the merge read primary again: once per derivation.
  const docs = new Map<XmlType, Promise<string>>();
  const xml = (type: XmlType) => docs.get(type) ?? docs.set(type, readXml(type)).get(type)!;
  return { prefix: '', repomd, xml, hidden: new Set() };
}

interface Leaves {
  leaves: LeafRepodata[];
  /** What the merge depends on: where each leaf lies, its repomd.xml, and every level's allow_shadowed. */
  fingerprint: string;
  /** Fills each leaf's `hidden`: reads the primary.xml of local leaves, so only when deriving. */
  hide(): Promise<void>;
}

/**
 * The leaves of a virtual repo in member order (depth first). `hide` gives each the package names
 * it must hide: at every level, the names local leaves publish hide remote leaves' packages of
 * that name unless that level's `allow_shadowed` lists them (repos/resolve.ts shadowing), as pypi,
 * npm and helm keep the rule through nested virtual repos.
 */
async function leavesOf(svc: Services, repo: RepoDef, depth: number): Promise<Leaves> {
  const levels: { level: RepoDef; ls: Leaf<LeafRepodata>[] }[] = [];
  const found = await allLeaves(svc, repo, depth, (m) => leafRepodata(svc, m), (level, ls) => {
    levels.push({ level, ls });
    return ls;
  });
  const leaves = found.map((l) => Object.assign(l.value, { prefix: l.path.map((n) => `${n}/`).join('') }));
  const rules = levels.map(({ level }) => `${level.name}\0${[...((level.options.allow_shadowed as string[] | undefined) ?? [])].sort().join(' ')}`);
  const fingerprint = sha256([...leaves.map((p) => `${p.prefix}\0${sha256(p.repomd)}`), ...rules].join('\n'));
  const hide = async () => {
    for (const { level, ls } of levels) {
      const hidden = await shadowing(level, ls, async (l) => blocks(await l.value.xml('primary')).map(nameOf));
      for (const l of ls) for (const n of hidden(l)) l.value.hidden.add(n);
    }
  };
  return { leaves, fingerprint, hide };
}

const blocks = (doc: string) => [...doc.matchAll(/<package[\s>][\s\S]*?<\/package>\n?/g)].map((m) => m[0].replace(/\n?$/, '\n'));
const tag = (block: string, re: RegExp) => re.exec(block)?.[1] ?? '';
const nameOf = (primary: string) => tag(primary, /<name>([^<]*)<\/name>/);

function nevra(primary: string): string {
  const v = /<version\s+([^>]*)\/>/.exec(primary)?.[1] ?? '';
  return [nameOf(primary), tag(primary, /<arch>([^<]*)<\/arch>/), v].join('\0');
}

/**
 * Leaves' repodata merged in member order: a package (name, epoch, version, release, arch) is
 * taken from the first leaf that has it and does not hide its name, with its filelists and other
 * entries from the same leaf. Locations gain the leaf's prefix, so `/VIRT/<member>/.../<path>`
 * serves the package from exactly the leaf whose entry was kept.
 */
async function merge(parts: LeafRepodata[]): Promise<Record<XmlType, Buffer>> {
  const seen = new Set<string>();
  const out: Record<XmlType, string[]> = { primary: [], filelists: [], other: [] };
  for (const part of parts) {
    const byId = async (type: 'filelists' | 'other') => {
      const m = new Map<string, string>();
      for (const b of blocks(await part.xml(type))) {
        const id = tag(b, /pkgid="([^"]+)"/);
        if (!m.has(id)) m.set(id, b);
      }
      return m;
    };
    const files = await byId('filelists');
    const other = await byId('other');
    for (const p of blocks(await part.xml('primary'))) {
      const key = nevra(p);
      const id = tag(p, /<checksum[^>]*pkgid="YES"[^>]*>([^<]+)</);
      if (seen.has(key) || part.hidden.has(nameOf(p)) || !files.has(id) || !other.has(id)) continue;
      seen.add(key);
      // A location with xml:base points elsewhere already; dnf fetches it from there.
      out.primary.push(p.replace(/(<location\b[^>]*\shref=")/, (loc) => (loc.includes('xml:base=') ? loc : `${loc}${part.prefix}`)));
      out.filelists.push(files.get(id)!);
      out.other.push(other.get(id)!);
    }
  }
  return { primary: xmlDoc('primary', out.primary), filelists: xmlDoc('filelists', out.filelists), other: xmlDoc('other', out.other) };
}

/** The virtual repo's repodata; `rendered` is the fingerprint of what the last render merged. */
function virtualDoc(depth: number): DerivedDoc & { rendered?: string } {
  return {
    path: REPOMD_PATH,
    contentType: XML_TYPE,
    async render(svc, repo) {
      const { leaves: parts, fingerprint, hide } = await leavesOf(svc, repo, depth);
      await hide();
      this.rendered = fingerprint;
      const stamps = parts.flatMap((p) => [...p.repomd.toString('utf8').matchAll(/<timestamp>(\d+)<\/timestamp>/g)].map((m) => Number(m[1])));
      return withSignature(repo, renderRepomd(await merge(parts), stamps.reduce((a, b) => Math.max(a, b), 0)));
    },
  };
}

/** The fingerprint (Leaves) each virtual repo's repodata was last derived from, on this server. */
const derivedFrom = (svc: Services) => svc.caches.lru<string>('rpm.virtual-derived-from', 4 << 20);

/**
 * A virtual repo's own repomd.xml row, derived again (parts first, repomd.xml last, as for local
 * repos) whenever a member's repomd.xml, the member tree or an allow_shadowed list has changed
 * since the last derivation. Unchanged, it reads only the leaves' repomd.xml.
 */
export async function virtualRepomd(svc: Services, repo: RepoDef, depth = 0): Promise<FileRec> {
  const { fingerprint } = await leavesOf(svc, repo, depth);
  const current = await svc.meta.files.get(repo.name, REPOMD_PATH);
  if (current && derivedFrom(svc).get(repo.name) === fingerprint) return current;
  const doc = virtualDoc(depth);
  const rec = await svc.derived.refresh(svc, repo, doc);
  if (doc.rendered) derivedFrom(svc).set(repo.name, doc.rendered, doc.rendered.length + repo.name.length);
  return rec;
}

/**
 * Whether the virtual repo's repodata lists `path` as a package location: a package its merge
 * left out (shadowed, or another member's copy won) is not served by the member's path either.
 * Looked up in the current generation, then once more after deriving again (members changed).
 */
export async function virtualLists(svc: Services, repo: RepoDef, path: string): Promise<boolean> {
  if ((await cachedPrimaryChecksums(svc, repo))?.has(path)) return true;
  await virtualRepomd(svc, repo);
  return (await cachedPrimaryChecksums(svc, repo))?.has(path) ?? false;
}
