import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

/** Builds OCI image layouts on disk at test time (no docker engine here): layers, config, manifests, index. */

export interface Blob { digest: string; size: number; mediaType: string }

function sha(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

async function tarOf(files: Record<string, Buffer>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, body] of Object.entries(files)) pack.entry({ name, size: body.length, mtime: new Date(0) }, body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export class Layout {
  readonly blobs = new Map<string, Buffer>();
  constructor(readonly dir: string) {}

  async add(body: Buffer, mediaType: string): Promise<Blob> {
    const digest = sha(body);
    this.blobs.set(digest, body);
    await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(this.dir, 'blobs', 'sha256', digest.slice(7)), body);
    return { digest, size: body.length, mediaType };
  }

  /** An image manifest with `layers` random layers of `layerSize` bytes each (gzipped tars: incompressible content). */
  async image(o: { layers?: number; layerSize?: number; arch?: string; seed?: string } = {}): Promise<Blob> {
    const layers: Blob[] = [];
    const diffIds: string[] = [];
    for (let i = 0; i < (o.layers ?? 2); i++) {
      const raw = await tarOf({ [`layer${i}/data.bin`]: randomBytes(o.layerSize ?? 2048), [`layer${i}/seed`]: Buffer.from(o.seed ?? '') });
      diffIds.push(sha(raw));
      layers.push(await this.add(gzipSync(raw), 'application/vnd.oci.image.layer.v1.tar+gzip'));
    }
    const config = Buffer.from(JSON.stringify({
      architecture: o.arch ?? 'amd64', os: 'linux', config: { Cmd: ['/bin/true'] }, rootfs: { type: 'layers', diff_ids: diffIds },
    }));
    const cfg = await this.add(config, 'application/vnd.oci.image.config.v1+json');
    const manifest = {
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: cfg, layers,
    };
    return this.add(Buffer.from(JSON.stringify(manifest)), manifest.mediaType);
  }

  async index(entries: { manifest: Blob; arch: string }[]): Promise<Blob> {
    const idx = {
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: entries.map((e) => ({ ...e.manifest, platform: { os: 'linux', architecture: e.arch } })),
    };
    return this.add(Buffer.from(JSON.stringify(idx)), idx.mediaType);
  }

  /** Writes oci-layout and index.json naming each tagged top-level manifest. */
  async write(tags: Record<string, Blob>): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await writeFile(join(this.dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFile(join(this.dir, 'index.json'), JSON.stringify({
      schemaVersion: 2,
      manifests: Object.entries(tags).map(([tag, b]) => ({ ...b, annotations: { 'org.opencontainers.image.ref.name': tag } })),
    }));
  }
}
