import { gunzipSync } from 'node:zlib';
import { sha256 } from '../../lib/digest.js';
import { AppError } from '../../lib/errors.js';
import { collect } from '../../lib/streams.js';
import type { DerivedDoc } from '../../repos/derived.js';
import type { Services } from '../../repos/services.js';
import type { Served } from '../../repos/types.js';
import { allMembers } from '../../repos/virtual.js';
import type { FileRec, RepoDef } from '../../storage/meta/types.js';
import { remoteRepodataFile, remoteRepomd, repomdChecksums } from './remote.js';
import { withSignature } from './sign.js';
import { localRepodata, renderRepomd, REPOMD_PATH, XML_TYPE, XML_TYPES, xmlDoc, type XmlType } from './repodata.js';

/** Cap on one uncompressed repodata document read for merging (a distribution's filelists runs to a few hundred MiB). */
const MERGE_MAX = 512 * 1024 * 1024;

interface MemberRepodata {
  member: RepoDef;
  repomd: Buffer;
  /** primary, filelists and other, uncompressed (read only when a merge is needed). */
  xml(): Promise<Record<XmlType, string>>;
}

/** A member's repomd.xml and a reader of what it names, whatever the member's kind. */
async function memberRepodata(svc: Services, repo: RepoDef, depth: number): Promise<MemberRepodata> {
  let repomd: Buffer;
  let read: (href: string) => Promise<Served>;
  if (repo.kind === 'remote') {
    repomd = (await remoteRepomd(svc, repo)).body;
    read = (href) => remoteRepodataFile(svc, repo, href);
  } else {
    const rec = repo.kind === 'local' ? await svc.derived.current(svc, repo, localRepodata) : await virtualRepomd(svc, repo, depth);
    repomd = await collect(await svc.blob.read(rec.digest));
    read = async (href) => {
      const f = await svc.meta.files.get(repo.name, href);
      if (!f) throw new AppError('UPSTREAM_FAILED', `${repo.name}: ${href} is missing`);
      return { rec: f, source: 'local', servedBy: repo.name, size: f.size };
    };
  }
  const named = [...repomdChecksums(repomd.toString('utf8'))];
  const xml = async () => {
    const out = {} as Record<XmlType, string>;
    for (const type of XML_TYPES) {
      const href = named.find(([, s]) => s.type === type)?.[0];
      if (!href) throw new AppError('UPSTREAM_FAILED', `${repo.name}: repomd.xml names no ${type}`);
      if (!href.endsWith('.gz')) throw new AppError('UPSTREAM_FAILED', `${repo.name}: ${href}: only gzip repodata can be merged`);
      const served = await read(href);
      const gz = await collect(served.body ?? (await svc.blob.read(served.rec.digest)), { max: MERGE_MAX, what: href });
      out[type] = gunzipSync(gz, { maxOutputLength: MERGE_MAX }).toString('utf8');
    }
    return out;
  };
  return { member: repo, repomd, xml };
}

const blocks = (doc: string) => [...doc.matchAll(/<package[\s>][\s\S]*?<\/package>\n?/g)].map((m) => m[0].replace(/\n?$/, '\n'));
const tag = (block: string, re: RegExp) => re.exec(block)?.[1] ?? '';

function nevra(primary: string): string {
  const v = /<version\s+([^>]*)\/>/.exec(primary)?.[1] ?? '';
  return [tag(primary, /<name>([^<]*)<\/name>/), tag(primary, /<arch>([^<]*)<\/arch>/), v].join('\0');
}

/**
 * Members' repodata merged in member order: a package (name, epoch, version, release, arch) is
 * taken from the first member that has it, with its filelists and other entries from the same
 * member. Locations gain the member's name as a prefix, so `/VIRT/<member>/<path>` serves the
 * package from exactly the member whose entry was kept.
 */
async function merge(parts: MemberRepodata[]): Promise<Record<XmlType, Buffer>> {
  const seen = new Set<string>();
  const out: Record<XmlType, string[]> = { primary: [], filelists: [], other: [] };
  for (const part of parts) {
    const member = part.member;
    const xml = await part.xml();
    const byId = (type: 'filelists' | 'other') => {
      const m = new Map<string, string>();
      for (const b of blocks(xml[type])) {
        const id = tag(b, /pkgid="([^"]+)"/);
        if (!m.has(id)) m.set(id, b);
      }
      return m;
    };
    const files = byId('filelists');
    const other = byId('other');
    for (const p of blocks(xml.primary)) {
      const key = nevra(p);
      const id = tag(p, /<checksum[^>]*pkgid="YES"[^>]*>([^<]+)</);
      if (seen.has(key) || !files.has(id) || !other.has(id)) continue;
      seen.add(key);
      // A location with xml:base points elsewhere already; dnf fetches it from there.
      out.primary.push(p.replace(/(<location\b[^>]*\shref=")/, (loc) => (loc.includes('xml:base=') ? loc : `${loc}${member.name}/`)));
      out.filelists.push(files.get(id)!);
      out.other.push(other.get(id)!);
    }
  }
  return { primary: xmlDoc('primary', out.primary), filelists: xmlDoc('filelists', out.filelists), other: xmlDoc('other', out.other) };
}

async function membersOf(svc: Services, repo: RepoDef, depth: number): Promise<MemberRepodata[]> {
  return (await allMembers(svc, repo, depth + 1, (m) => memberRepodata(svc, m, depth + 1))).map((p) => p.value);
}

function virtualDoc(depth: number): DerivedDoc {
  return {
    path: REPOMD_PATH,
    contentType: XML_TYPE,
    async render(svc, repo) {
      const parts = await membersOf(svc, repo, depth);
      const stamps = parts.flatMap((p) => [...p.repomd.toString('utf8').matchAll(/<timestamp>(\d+)<\/timestamp>/g)].map((m) => Number(m[1])));
      return withSignature(repo, renderRepomd(await merge(parts), stamps.reduce((a, b) => Math.max(a, b), 0)));
    },
  };
}

/** Fingerprint of the members' repomd.xml each virtual repo was last derived from, per server. */
const derivedFrom = new WeakMap<Services, Map<string, string>>();

/**
 * A virtual repo's own repomd.xml row, derived again (parts first, repomd.xml last, as for local
 * repos) whenever any member's repomd.xml has changed since the last derivation.
 */
export async function virtualRepomd(svc: Services, repo: RepoDef, depth = 0): Promise<FileRec> {
  let memo = derivedFrom.get(svc);
  if (!memo) derivedFrom.set(svc, (memo = new Map()));
  const parts = await membersOf(svc, repo, depth);
  const fingerprint = sha256(Buffer.from(parts.map((p) => `${p.member.name}\0${sha256(p.repomd)}`).join('\n')));
  const current = await svc.meta.files.get(repo.name, REPOMD_PATH);
  if (current && memo.get(repo.name) === fingerprint) return current;
  const rec = await svc.derived.refresh(svc, repo, virtualDoc(depth));
  memo.set(repo.name, fingerprint);
  return rec;
}
