import { StringDecoder } from 'node:string_decoder';
import { createGunzip } from 'node:zlib';
import type { ExtraHashes } from '../../lib/spool.js';
import { collect } from '../../lib/streams.js';
import { readCapped, resolveFile } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import type { FileRef, Served } from '../../repos/types.js';
import type { RepoDef } from '../../storage/meta/types.js';
import { REPOMD_PATH } from './repodata.js';

type Expect = FileRef['expect'];
interface Checksum { alg: string; hex: string; size?: number }

const HASH_BY_HEX_LENGTH: Record<number, string> = { 40: 'sha1', 64: 'sha256', 128: 'sha512' };

/** What a fetched file must match; the size lets a wrong body be refused before any of it is sent. */
function expectOf(c: Checksum | undefined): Expect {
  if (!c) return undefined;
  const alg = c.alg === 'sha' ? 'sha1' : c.alg;
  const size = c.size;
  if (alg === 'sha256') return { digest: `sha256:${c.hex}`, size };
  if (['sha1', 'sha384', 'sha512', 'md5'].includes(alg)) return { hashes: { [alg]: c.hex } as ExtraHashes, size };
  return size === undefined ? undefined : { size };
}

function sizeIn(block: string, re: RegExp): number | undefined {
  const m = re.exec(block);
  return m ? Number(m[1]) : undefined;
}

function unescapeXml(s: string): string {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
}

/** href -> checksum of every file a repomd.xml names. */
export function repomdChecksums(xml: string): Map<string, Checksum & { type: string }> {
  const out = new Map<string, Checksum & { type: string }>();
  for (const m of xml.matchAll(/<data\s+type="([^"]+)"\s*>([\s\S]*?)<\/data>/g)) {
    const sum = /<checksum\s+type="(\w+)"\s*>\s*([0-9a-fA-F]+)\s*<\/checksum>/.exec(m[2]);
    const href = /<location\b[^>]*\shref="([^"]+)"/.exec(m[2]);
    if (sum && href) out.set(unescapeXml(href[1]), { type: m[1], alg: sum[1].toLowerCase(), hex: sum[2].toLowerCase(), size: sizeIn(m[2], /<size>\s*(\d+)\s*<\/size>/) });
  }
  return out;
}

/**
 * The upstream's repomd.xml (TTL and revalidation as every remote index), after the files it
 * names are in the cache, verified: a client holding this repomd.xml finds all of it here later,
 * whatever the upstream has switched to since. Those files are content-addressed and cached forever.
 */
export async function remoteRepomd(svc: Services, repo: RepoDef): Promise<{ served: Served; body: Buffer }> {
  const served = await resolveFile(svc, repo, { path: REPOMD_PATH, mutable: true });
  const body = await readCapped(svc, served);
  // sqlite and zchunk variants (which dnf does not read, and the largest files) are left to be fetched on request.
  const wanted = [...repomdChecksums(body.toString('utf8'))].filter(([, s]) => !/_(db|zck)$/.test(s.type));
  await Promise.all(wanted.map(async ([href, sum]) => {
    try {
      const f = await resolveFile(svc, repo, { path: href, expect: expectOf(sum) });
      if (f.body) for await (const _ of f.body);
    } catch (err) {
      svc.log.warn({ repo: repo.name, path: href, err: (err as Error).message }, 'repodata prefetch failed');
    }
  }));
  return { served, body };
}

/** A file under repodata/: verified against the checksum in its name, else the one repomd.xml gives. */
export async function remoteRepodataFile(svc: Services, repo: RepoDef, path: string): Promise<Served> {
  const named = /^repodata\/([0-9a-f]+)-[^/]+$/.exec(path)?.[1];
  const alg = named && HASH_BY_HEX_LENGTH[named.length];
  const listed = (await cachedRepomd(svc, repo))?.get(path);
  const sum = alg && named !== listed?.hex ? { alg, hex: named } : listed;
  return resolveFile(svc, repo, { path, expect: expectOf(sum) });
}

/** A package, verified against the checksum the cached primary.xml lists for it (when one is cached). */
export async function remotePackage(svc: Services, repo: RepoDef, path: string): Promise<Served> {
  const sums = await cachedPrimaryChecksums(svc, repo);
  return resolveFile(svc, repo, { path, expect: expectOf(sums?.get(path)), rejectHtml: true });
}

async function cachedRepomd(svc: Services, repo: RepoDef) {
  const rec = await svc.meta.files.get(repo.name, REPOMD_PATH);
  if (!rec) return null;
  return repomdChecksums((await collect(await svc.blob.read(rec.digest), { max: svc.config.limits.metadata_body, what: 'repomd.xml' })).toString('utf8'));
}

/** location href -> checksum of the packages the repo's stored primary.xml lists (parsed once per primary). */
export async function cachedPrimaryChecksums(svc: Services, repo: RepoDef): Promise<Map<string, Checksum> | null> {
  const primary = [...((await cachedRepomd(svc, repo)) ?? [])].find(([href, s]) => s.type === 'primary' && href.endsWith('.gz'));
  const rec = primary && (await svc.meta.files.get(repo.name, primary[0]));
  if (!rec) return null;
  const key = `rpm-primary:${repo.name}:${rec.digest}`;
  const hit = svc.parsedDocs.get(key) as Map<string, Checksum> | undefined;
  if (hit) return hit;
  const sums = await scanPrimary((await svc.blob.read(rec.digest)).pipe(createGunzip()));
  svc.parsedDocs.set(key, sums, sums.size * 200);
  return sums;
}

/** location href -> package checksum, from a primary.xml stream, one <package> block at a time. */
export async function scanPrimary(src: AsyncIterable<Buffer>): Promise<Map<string, Checksum>> {
  const out = new Map<string, Checksum>();
  const utf8 = new StringDecoder('utf8');
  let text = '';
  for await (const chunk of src) {
    text += utf8.write(chunk);
    let end: number;
    while ((end = text.indexOf('</package>')) >= 0) {
      const block = text.slice(0, end);
      text = text.slice(end + 10);
      const sum = /<checksum\s+type="(\w+)"[^>]*>([0-9a-fA-F]+)<\/checksum>/.exec(block);
      const href = /<location\b[^>]*\shref="([^"]+)"/.exec(block);
      if (sum && href) out.set(unescapeXml(href[1]), { alg: sum[1].toLowerCase(), hex: sum[2].toLowerCase(), size: sizeIn(block, /<size\b[^>]*\spackage="(\d+)"/) });
    }
  }
  return out;
}
