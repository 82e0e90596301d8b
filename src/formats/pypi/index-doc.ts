import { parseJson, tryDecode } from '../../lib/decode.js';
import { normalizeName } from './names.js';

/** One file of a project page, as parsed from an upstream or built from local rows. */
export interface PyFile {
  filename: string;
  /** Remote: the upstream URL of the file (absolute, fragment removed). */
  url?: string;
  /** Algorithm -> hex digest (sha256 when known). */
  hashes: Record<string, string>;
  requiresPython?: string;
  /** PEP 658/714 core metadata available at `<url>.metadata`; with its hashes when known. */
  metadata?: Record<string, string>;
  /** PEP 592: yanked, with the reason ('' when none given). */
  yanked?: string;
  size?: number;
  uploadTime?: string;
  /** Virtual repos: the member this entry came from (downloads go there). */
  from?: string;
}

export interface ProjectDoc {
  /** Normalised name. */
  name: string;
  files: PyFile[];
}

export interface RootDoc {
  projects: string[];
}

export const JSON_TYPE = 'application/vnd.pypi.simple.v1+json';
export const HTML_V1_TYPE = 'application/vnd.pypi.simple.v1+html';
/** What we ask an upstream for: PEP 691 JSON preferred, HTML accepted. */
export const UPSTREAM_ACCEPT = `${JSON_TYPE}, ${HTML_V1_TYPE};q=0.2, text/html;q=0.01`;

export type Flavor = 'json' | 'html-v1' | 'html';

/**
 * PEP 691 content negotiation on Accept (q-values honoured). Without a
 * preference (no Accept, `*\/*`, ties) the answer is text/html, as PEP 691
 * asks for compatibility. `?format=` overrides Accept, as on PyPI.
 */
export function negotiate(accept: string | undefined, format?: string): Flavor {
  const header = format || accept || '';
  if (!header.trim()) return 'html';
  const entries = header.split(',').map((s) => {
    const [type, ...params] = s.trim().toLowerCase().split(';');
    const q = params.map((p) => /^\s*q\s*=\s*([0-9.]+)\s*$/.exec(p)).find(Boolean);
    return { type: type.trim(), q: q ? Number(q[1]) : 1 };
  });
  const qOf = (types: string[]): number => {
    let best = -1;
    for (const e of entries) {
      const hit = types.includes(e.type) ? 2 : e.type === 'application/*' && types.some((t) => t.startsWith('application/')) ? 1
        : e.type === 'text/*' && types.some((t) => t.startsWith('text/')) ? 1 : e.type === '*/*' ? 0 : -1;
      if (hit >= 0 && e.q > best) best = e.q;
    }
    return best;
  };
  const candidates: [Flavor, number][] = [
    ['html', qOf(['text/html'])],
    ['html-v1', qOf([HTML_V1_TYPE, 'application/vnd.pypi.simple.latest+html'])],
    ['json', qOf([JSON_TYPE, 'application/vnd.pypi.simple.latest+json'])],
  ];
  let pick: [Flavor, number] = ['html', 0];
  for (const c of candidates) if (c[1] > pick[1]) pick = c;
  return pick[0];
}

export function contentTypeOf(f: Flavor): string {
  return f === 'json' ? JSON_TYPE : f === 'html-v1' ? HTML_V1_TYPE : 'text/html; charset=utf-8';
}

// ---------- parsing upstream pages ----------

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos|#39);/gi, (_, e: string) => {
    const l = e.toLowerCase();
    if (l === 'amp') return '&';
    if (l === 'lt') return '<';
    if (l === 'gt') return '>';
    if (l === 'quot') return '"';
    if (l === 'apos') return "'";
    const code = l.startsWith('#x') ? parseInt(l.slice(2), 16) : parseInt(l.slice(1), 10);
    return Number.isFinite(code) && code <= 0x10ffff ? String.fromCodePoint(code) : '';
  });
}

function anchors(html: string): { attrs: Record<string, string>; text: string }[] {
  const out: { attrs: Record<string, string>; text: string }[] = [];
  const re = /<a\b([^>]*)>([\s\S]*?)<\/a\s*>/gi;
  for (let m = re.exec(html); m; m = re.exec(html)) {
    const attrs: Record<string, string> = {};
    const ar = /([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
    for (let a = ar.exec(m[1]); a; a = ar.exec(m[1])) {
      attrs[a[1].toLowerCase()] = decodeEntities(a[2] ?? a[3] ?? a[4] ?? '');
    }
    out.push({ attrs, text: decodeEntities(m[2].replace(/<[^>]*>/g, '')).trim() });
  }
  return out;
}

function isJson(body: Buffer): boolean {
  for (const b of body) {
    if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09 || b === 0xef || b === 0xbb || b === 0xbf) continue;
    return b === 0x7b;
  }
  return false;
}

function splitUrl(href: string, base: string): { url: string; hashes: Record<string, string> } {
  const abs = new URL(href, base);
  const hashes: Record<string, string> = {};
  const frag = /^#([a-z0-9]+)=([a-f0-9]+)$/i.exec(abs.hash);
  if (frag) hashes[frag[1].toLowerCase()] = frag[2].toLowerCase();
  abs.hash = '';
  return { url: abs.toString(), hashes };
}

function metadataAttr(v: string | undefined): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  const t = v.trim();
  if (t.toLowerCase() === 'true' || t === '') return {};
  const m = /^([a-z0-9]+)=([a-f0-9]+)$/i.exec(t);
  return m ? { [m[1].toLowerCase()]: m[2].toLowerCase() } : undefined;
}

function metadataJson(v: unknown): Record<string, string> | undefined {
  if (v === true) return {};
  if (v && typeof v === 'object') {
    const out: Record<string, string> = {};
    for (const [k, h] of Object.entries(v as Record<string, unknown>)) if (typeof h === 'string') out[k.toLowerCase()] = h.toLowerCase();
    return out;
  }
  return undefined;
}

function filenameOf(url: string): string {
  const last = new URL(url).pathname.split('/').pop() ?? '';
  return tryDecode(last) ?? last;
}

/** A project page from an upstream (PEP 691 JSON or PEP 503 HTML), relative URLs resolved against `pageUrl`. */
export function parseProjectPage(body: Buffer, pageUrl: string, project: string): ProjectDoc {
  const files: PyFile[] = [];
  const seen = new Set<string>();
  const push = (f: PyFile) => {
    if (!f.filename || seen.has(f.filename) || /[/\\]/.test(f.filename)) return;
    seen.add(f.filename);
    files.push(f);
  };
  if (isJson(body)) {
    const j = upstreamJson(body, 'project page');
    for (const f of Array.isArray(j?.files) ? j.files : []) {
      if (typeof f?.url !== 'string') continue;
      const { url, hashes: fragHashes } = splitUrl(f.url, pageUrl);
      const hashes: Record<string, string> = { ...fragHashes };
      if (f.hashes && typeof f.hashes === 'object') {
        for (const [k, v] of Object.entries(f.hashes)) if (typeof v === 'string') hashes[k.toLowerCase()] = v.toLowerCase();
      }
      push({
        filename: typeof f.filename === 'string' ? f.filename : filenameOf(url),
        url,
        hashes,
        requiresPython: typeof f['requires-python'] === 'string' && f['requires-python'] ? f['requires-python'] : undefined,
        metadata: metadataJson(f['core-metadata'] ?? f['dist-info-metadata'] ?? f['data-dist-info-metadata']),
        yanked: f.yanked === true ? '' : typeof f.yanked === 'string' ? f.yanked : undefined,
        size: typeof f.size === 'number' ? f.size : undefined,
        uploadTime: typeof f['upload-time'] === 'string' ? f['upload-time'] : undefined,
      });
    }
  } else {
    for (const a of anchors(body.toString('utf8'))) {
      if (!a.attrs.href) continue;
      const { url, hashes } = splitUrl(a.attrs.href, pageUrl);
      push({
        filename: a.text || filenameOf(url),
        url,
        hashes,
        requiresPython: a.attrs['data-requires-python'] || undefined,
        metadata: metadataAttr(a.attrs['data-core-metadata'] ?? a.attrs['data-dist-info-metadata']),
        yanked: 'data-yanked' in a.attrs ? a.attrs['data-yanked'] : undefined,
      });
    }
  }
  return { name: normalizeName(project), files };
}

/** An upstream JSON page; anything else is the upstream's failure. */
function upstreamJson(body: Buffer, what: string): any {
  return parseJson(body, 'UPSTREAM_FAILED', `upstream ${what} is not valid JSON`);
}

/** The root listing from an upstream (JSON `projects[].name` or HTML anchors). */
export function parseRootPage(body: Buffer): RootDoc {
  if (isJson(body)) {
    const j = upstreamJson(body, 'root index');
    return { projects: (Array.isArray(j?.projects) ? j.projects : []).map((p: any) => p?.name).filter((n: unknown) => typeof n === 'string') };
  }
  return { projects: anchors(body.toString('utf8')).map((a) => a.text).filter(Boolean) };
}

// ---------- merging (virtual repos) ----------

/** Union of files by filename in member order: the first member that lists a filename wins. */
export function mergeProjects(name: string, parts: { member: { name: string }; doc: ProjectDoc }[]): ProjectDoc {
  const files: PyFile[] = [];
  const seen = new Set<string>();
  for (const p of parts) {
    for (const f of p.doc.files) {
      if (seen.has(f.filename)) continue;
      seen.add(f.filename);
      files.push({ ...f, from: p.member.name });
    }
  }
  return { name, files };
}

export function mergeRoots(parts: { doc: RootDoc }[]): RootDoc {
  const byNorm = new Map<string, string>();
  for (const p of parts) for (const n of p.doc.projects) if (!byNorm.has(normalizeName(n))) byNorm.set(normalizeName(n), n);
  return { projects: [...byNorm.values()] };
}

// ---------- rendering ----------

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Where this server serves a project's file: `<repoUrl>/packages/<project>/<filename>`. */
export function fileUrl(repoUrl: string, project: string, filename: string): string {
  return `${repoUrl}/packages/${project}/${encodeURIComponent(filename)}`;
}

function fragment(hashes: Record<string, string>): string {
  if (hashes.sha256) return `#sha256=${hashes.sha256}`;
  const [k, v] = Object.entries(hashes)[0] ?? [];
  return k ? `#${k}=${v}` : '';
}

function metaAttrValue(m: Record<string, string>): string {
  return m.sha256 ? `sha256=${m.sha256}` : 'true';
}

export function renderProject(doc: ProjectDoc, repoUrl: string, flavor: Flavor): string {
  if (flavor === 'json') {
    return JSON.stringify({
      meta: { 'api-version': '1.0' },
      name: doc.name,
      files: doc.files.map((f) => {
        const o: Record<string, unknown> = { filename: f.filename, url: fileUrl(repoUrl, doc.name, f.filename), hashes: f.hashes };
        if (f.requiresPython) o['requires-python'] = f.requiresPython;
        if (f.metadata) {
          // PEP 714: JSON carries only `core-metadata`; the old `dist-info-metadata` key breaks pip 22.3-23.0.
          o['core-metadata'] = f.metadata.sha256 ? { sha256: f.metadata.sha256 } : true;
        }
        o.yanked = f.yanked === undefined ? false : f.yanked === '' ? true : f.yanked;
        if (f.size !== undefined) o.size = f.size;
        if (f.uploadTime) o['upload-time'] = f.uploadTime;
        return o;
      }),
    });
  }
  const lines = doc.files.map((f) => {
    let attrs = ` href="${esc(fileUrl(repoUrl, doc.name, f.filename) + fragment(f.hashes))}"`;
    if (f.requiresPython) attrs += ` data-requires-python="${esc(f.requiresPython)}"`;
    if (f.metadata) {
      const v = esc(metaAttrValue(f.metadata));
      attrs += ` data-dist-info-metadata="${v}" data-core-metadata="${v}"`;
    }
    if (f.yanked !== undefined) attrs += ` data-yanked="${esc(f.yanked)}"`;
    return `    <a${attrs}>${esc(f.filename)}</a><br/>`;
  });
  return [
    '<!DOCTYPE html>',
    '<html>',
    '  <head>',
    '    <meta name="pypi:repository-version" content="1.0">',
    `    <title>Links for ${esc(doc.name)}</title>`,
    '  </head>',
    '  <body>',
    `    <h1>Links for ${esc(doc.name)}</h1>`,
    ...lines,
    '  </body>',
    '</html>',
    '',
  ].join('\n');
}

export function renderRoot(doc: RootDoc, repoUrl: string, flavor: Flavor): string {
  if (flavor === 'json') {
    return JSON.stringify({ meta: { 'api-version': '1.0' }, projects: doc.projects.map((name) => ({ name })) });
  }
  const lines = doc.projects.map((n) => `    <a href="${esc(`${repoUrl}/simple/${normalizeName(n)}/`)}">${esc(n)}</a><br/>`);
  return [
    '<!DOCTYPE html>',
    '<html>',
    '  <head>',
    '    <meta name="pypi:repository-version" content="1.0">',
    '    <title>Simple index</title>',
    '  </head>',
    '  <body>',
    ...lines,
    '  </body>',
    '</html>',
    '',
  ].join('\n');
}
