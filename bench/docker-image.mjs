// Writes an OCI image layout for bench/docker.sh: LAYERS uncompressed tar layers of LAYER_MB random MiB each.
//   node bench/docker-image.mjs DIR [LAYERS] [LAYER_MB]
import { createHash, randomFillSync } from 'node:crypto';
import { createWriteStream, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';

const [dir, layersArg = '6', mbArg = '50'] = process.argv.slice(2);
const layers = Number(layersArg);
const size = Number(mbArg) * 1024 * 1024;
mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });

function put(buf) {
  const hex = createHash('sha256').update(buf).digest('hex');
  writeFileSync(join(dir, 'blobs', 'sha256', hex), buf);
  return { digest: `sha256:${hex}`, size: buf.length };
}

const descs = [];
for (let i = 0; i < layers; i++) {
  const pack = tar.pack();
  const hash = createHash('sha256');
  let total = 0;
  const tmp = join(dir, `layer-${i}.tmp`);
  const counting = async function* (src) {
    for await (const c of src) { hash.update(c); total += c.length; yield c; }
  };
  const done = pipeline(pack, counting, createWriteStream(tmp));
  const entry = pack.entry({ name: `data-${i}.bin`, size, mtime: new Date(0) });
  for (let off = 0; off < size; off += 1 << 20) {
    const chunk = randomFillSync(Buffer.allocUnsafe(Math.min(1 << 20, size - off))); // fresh: streams keep references
    if (!entry.write(chunk)) await new Promise((r) => entry.once('drain', r));
  }
  entry.end();
  pack.finalize();
  await done;
  const hex = hash.digest('hex');
  renameSync(tmp, join(dir, 'blobs', 'sha256', hex));
  descs.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${hex}`, size: total });
}
const config = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: descs.map((d) => d.digest) } })));
const manifest = Buffer.from(JSON.stringify({
  schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
  config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: descs,
}));
const m = put(manifest);
writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, annotations: { 'org.opencontainers.image.ref.name': 'bench' } }] }));
console.log(JSON.stringify({ manifest: m.digest, biggest: descs[0].digest, bytes: descs.reduce((a, d) => a + d.size, 0) }));
