import { formatConfig } from '../../config/schema.js';
import { isDigest, type Digest } from '../../lib/digest.js';
import type { Services } from '../../repos/services.js';
import type { FileRec, RepoDef } from '../../storage/meta/types.js';
import type { FormatHandler, GcContext } from '../types.js';
import { keys, splitKey } from './names.js';
import { DOCKER_CONFIG } from './options.js';
import { dropSession } from './uploads.js';
import { collect } from '../../lib/streams.js';
import { removeFileIfUnchanged } from '../../repos/writes.js';

/**
 * gc for docker repos, before the core sweeps unreferenced blobs:
 * - local repos: mark from every tag (index -> manifests -> config + layers,
 *   and manifests whose `subject` is marked: signatures, SBOMs); unmarked
 *   manifests and layer links older than docker.untagged_age lose their rows, so
 *   their blobs become unreferenced. Anything younger (a push in progress) stays.
 * - upload sessions past uploads.session_ttl: row and spool file removed.
 */
export const dockerGc: FormatHandler['gc'] = {
  kinds: ['local'],
  async run(ctx, repos) {
    for (const repo of repos) await gcRepo(ctx, repo);
    await gcSessions(ctx);
  },
};

interface Image { manifests: Map<Digest, FileRec>; tags: FileRec[]; layers: FileRec[] }

async function gcRepo(ctx: GcContext, repo: RepoDef): Promise<void> {
  const { svc } = ctx;
  const images = new Map<string, Image>();
  for await (const f of svc.meta.files.list(repo.name)) {
    const k = splitKey(f.path);
    if (!k) continue;
    let img = images.get(k.image);
    if (!img) images.set(k.image, (img = { manifests: new Map(), tags: [], layers: [] }));
    if (k.kind === '_manifests') img.manifests.set(f.digest, f);
    else if (k.kind === '_tags') img.tags.push(f);
    else img.layers.push(f);
  }
  const cutoff = ctx.now - formatConfig(svc.config, 'docker', DOCKER_CONFIG).untagged_age;
  for (const [image, img] of images) {
    const marked = new Set<Digest>();
    const blobs = new Set<Digest>();
    const visit = async (d: Digest): Promise<void> => {
      if (marked.has(d) || !img.manifests.has(d)) return;
      marked.add(d);
      const doc = await readManifest(svc, d);
      if (!doc) return;
      if (isDigest(doc.config?.digest)) blobs.add(doc.config.digest);
      for (const l of doc.layers ?? []) if (isDigest(l?.digest)) blobs.add(l.digest);
      for (const m of doc.manifests ?? []) if (isDigest(m?.digest)) await visit(m.digest);
    };
    for (const t of img.tags) await visit(t.digest);
    // Referrers of anything kept are kept (until nothing new is marked).
    for (let grew = true; grew;) {
      grew = false;
      for (const [d, rec] of img.manifests) {
        const subject = rec.meta?.subject;
        if (!marked.has(d) && typeof subject === 'string' && marked.has(subject as Digest)) {
          await visit(d);
          grew = true;
        }
      }
    }
    for (const [d, rec] of img.manifests) {
      if (marked.has(d) || rec.fetchedAt > cutoff) continue;
      ctx.report({ action: 'untagged-manifest', repo: repo.name, path: rec.path, digest: d, bytes: rec.size });
      if (!ctx.dryRun) await removeIfUnchanged(svc, repo.name, rec);
    }
    for (const rec of img.layers) {
      if (blobs.has(rec.digest) || rec.fetchedAt > cutoff) continue;
      ctx.report({ action: 'unreferenced-layer', repo: repo.name, path: keys.layer(image, rec.digest), digest: rec.digest, bytes: rec.size });
      if (!ctx.dryRun) await removeIfUnchanged(svc, repo.name, rec);
    }
  }
}

/** Removes a row only if nobody re-pushed it since it was marked (a push refreshes fetchedAt). */
async function removeIfUnchanged(svc: Services, repo: string, rec: FileRec): Promise<void> {
  await removeFileIfUnchanged(svc, { ...rec, repo });
}

interface Doc { config?: { digest?: string }; layers?: { digest?: string }[]; manifests?: { digest?: string }[] }

async function readManifest(svc: Services, d: Digest): Promise<Doc | null> {
  try {
    const body = await collect(await svc.blob.read(d), { max: svc.config.limits.metadata_body });
    return JSON.parse(body.toString('utf8')) as Doc;
  } catch {
    return null;
  }
}

async function gcSessions(ctx: GcContext): Promise<void> {
  const { svc } = ctx;
  const before = ctx.now - svc.config.uploads.session_ttl;
  for (const s of await svc.meta.sessions.olderThan(before)) {
    ctx.report({ action: 'expired-upload', repo: s.repo, path: s.scope });
    if (!ctx.dryRun) await dropSession(svc, s.id);
  }
  // Parts whose session row is gone (a crash between the two removals).
  for await (const p of svc.blob.parts.sessions()) {
    if (p.changedAt > before || (await svc.meta.sessions.get(p.session))) continue;
    ctx.report({ action: 'orphan-upload-file', path: p.session, bytes: p.bytes });
    if (!ctx.dryRun) await svc.blob.parts.drop(p.session);
  }
}
