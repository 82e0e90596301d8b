import { gzipSync } from 'node:zlib';
import { hexOf, sha256 } from '../../lib/digest.js';
import type { DerivedDoc, DerivedPart } from '../../repos/derived.js';
import type { Services } from '../../repos/services.js';
import type { FileRec, RepoDef } from '../../storage/meta/types.js';
import { withSignature } from './sign.js';
import { DEP_KINDS, primaryFiles, type Dep, type RpmFile, type RpmMeta } from './header.js';

export const REPOMD_PATH = 'repodata/repomd.xml';
export const XML_TYPE = 'text/xml';
const GZ_TYPE = 'application/gzip';

/** A stored package row: its parsed header and where it lies in the repo. */
export interface Pkg {
  meta: RpmMeta;
  href: string;
  pkgid: string;
  size: number;
  /** Upload time, seconds (createrepo_c: the file's mtime). */
  time: number;
}

export function pkgOf(rec: FileRec): Pkg | null {
  if (rec.meta?.kind !== 'rpm') return null;
  return { meta: rec.meta.rpm as RpmMeta, href: rec.path, pkgid: hexOf(rec.digest), size: rec.size, time: Math.floor(rec.fetchedAt / 1000) };
}

function text(s: string | number): string {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\r/g, '&#13;');
}

function attr(s: string | number): string {
  return text(s).replace(/"/g, '&quot;').replace(/\n/g, '&#10;').replace(/\t/g, '&#9;');
}

function attrs(o: Record<string, string | number | undefined>): string {
  return Object.entries(o).filter(([, v]) => v !== undefined).map(([k, v]) => ` ${k}="${attr(v!)}"`).join('');
}

const version = (m: RpmMeta) => `<version${attrs({ epoch: m.epoch, ver: m.version, rel: m.release })}/>`;

function fileLines(files: RpmFile[], indent: string): string {
  return files.map((f) => `${indent}<file${attrs({ type: f.type })}>${text(f.path)}</file>\n`).join('');
}

function depLines(kind: string, deps: Dep[] | undefined): string {
  if (!deps?.length) return '';
  const entries = deps.map((d) => `      <rpm:entry${attrs({ name: d.name, flags: d.flags, epoch: d.epoch, ver: d.ver, rel: d.rel, pre: d.pre ? '1' : undefined })}/>\n`);
  return `    <rpm:${kind}>\n${entries.join('')}    </rpm:${kind}>\n`;
}

function primaryEntry(p: Pkg): string {
  const m = p.meta;
  return `<package type="rpm">
  <name>${text(m.name)}</name>
  <arch>${text(m.arch)}</arch>
  ${version(m)}
  <checksum type="sha256" pkgid="YES">${p.pkgid}</checksum>
  <summary>${text(m.summary)}</summary>
  <description>${text(m.description)}</description>
  <packager>${text(m.packager)}</packager>
  <url>${text(m.url)}</url>
  <time${attrs({ file: p.time, build: m.buildTime })}/>
  <size${attrs({ package: p.size, installed: m.installedSize, archive: m.archiveSize })}/>
  <location${attrs({ href: p.href })}/>
  <format>
    <rpm:license>${text(m.license)}</rpm:license>
    <rpm:vendor>${text(m.vendor)}</rpm:vendor>
    <rpm:group>${text(m.group)}</rpm:group>
    <rpm:buildhost>${text(m.buildhost)}</rpm:buildhost>
    <rpm:sourcerpm>${text(m.sourcerpm)}</rpm:sourcerpm>
    <rpm:header-range${attrs({ start: m.headerStart, end: m.headerEnd })}/>
${DEP_KINDS.map((k) => depLines(k, m.deps[k])).join('')}${fileLines(primaryFiles(m.files), '    ')}  </format>
</package>
`;
}

const pkgHead = (p: Pkg) => `<package${attrs({ pkgid: p.pkgid, name: p.meta.name, arch: p.meta.arch })}>\n  ${version(p.meta)}\n`;

function filelistsEntry(p: Pkg): string {
  return `${pkgHead(p)}${fileLines(p.meta.files, '  ')}</package>\n`;
}

function otherEntry(p: Pkg): string {
  const logs = p.meta.changelogs.map((c) => `  <changelog${attrs({ author: c.author, date: c.date })}>${text(c.text)}</changelog>\n`);
  return `${pkgHead(p)}${logs.join('')}</package>\n`;
}

const XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n';
const NS = 'http://linux.duke.edu/metadata';

export const XML_TYPES = ['primary', 'filelists', 'other'] as const;
export type XmlType = (typeof XML_TYPES)[number];

const ROOTS: Record<XmlType, string> = {
  primary: `metadata xmlns="${NS}/common" xmlns:rpm="${NS}/rpm"`,
  filelists: `filelists xmlns="${NS}/filelists"`,
  other: `otherdata xmlns="${NS}/other"`,
};

/** One repodata document around its `<package>` entries (each ending in a newline). */
export function xmlDoc(type: XmlType, entries: string[]): Buffer {
  const root = ROOTS[type];
  return Buffer.from(`${XML_DECL}<${root} packages="${entries.length}">\n${entries.join('')}</${root.split(' ')[0]}>\n`);
}

/** primary, filelists and other as createrepo_c writes them, uncompressed. */
export function renderXml(pkgs: Pkg[]): Record<XmlType, Buffer> {
  return {
    primary: xmlDoc('primary', pkgs.map(primaryEntry)),
    filelists: xmlDoc('filelists', pkgs.map(filelistsEntry)),
    other: xmlDoc('other', pkgs.map(otherEntry)),
  };
}

/** repomd.xml over gzipped parts: each part named by its compressed checksum, as createrepo_c does. */
export function renderRepomd(xml: Record<string, Buffer>, timestamp: number): { body: Buffer; parts: DerivedPart[] } {
  const parts: DerivedPart[] = [];
  const data = Object.entries(xml).map(([type, open]) => {
    const gz = gzipSync(open);
    const hex = hexOf(sha256(gz));
    const path = `repodata/${hex}-${type}.xml.gz`;
    parts.push({ path, contentType: GZ_TYPE, body: gz });
    return `  <data type="${type}">
    <checksum type="sha256">${hex}</checksum>
    <open-checksum type="sha256">${hexOf(sha256(open))}</open-checksum>
    <location href="${path}"/>
    <timestamp>${timestamp}</timestamp>
    <size>${gz.length}</size>
    <open-size>${open.length}</open-size>
  </data>
`;
  });
  const body = Buffer.from(`${XML_DECL}<repomd xmlns="${NS}/repo" xmlns:rpm="${NS}/rpm">\n  <revision>${timestamp}</revision>\n${data.join('')}</repomd>\n`);
  return { body, parts };
}

async function localPkgs(svc: Services, repo: RepoDef): Promise<Pkg[]> {
  const out: Pkg[] = [];
  for await (const rec of svc.meta.files.list(repo.name)) {
    const p = pkgOf(rec);
    if (p) out.push(p);
  }
  return out;
}

/** A local repo's repodata, derived from the stored rows (never from the packages themselves). */
export const localRepodata: DerivedDoc = {
  path: REPOMD_PATH,
  contentType: XML_TYPE,
  async render(svc, repo) {
    const pkgs = await localPkgs(svc, repo);
    const timestamp = pkgs.reduce((t, p) => Math.max(t, p.time), 0);
    return withSignature(repo, renderRepomd(renderXml(pkgs), timestamp));
  },
};
