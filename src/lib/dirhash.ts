import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ZipArchive } from './zip.js';

/**
 * Go's `dirhash.Hash1` ("h1:"): SHA-256 over lines `<sha256 hex>  <name>\n`, one per file in byte
 * order of the names, base64. The go command uses it for module zips and go.mod files (the
 * checksum database's lines), terraform for provider packages (`h1:` in lock files and mirrors).
 */
export async function hash1(files: { name: string; open(): Promise<Readable> | Readable }[]): Promise<string> {
  const sorted = [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const summary = createHash('sha256');
  for (const f of sorted) {
    if (f.name.includes('\n')) throw new Error(`dirhash: file name with a newline: ${JSON.stringify(f.name)}`);
    const h = createHash('sha256');
    for await (const chunk of await f.open()) h.update(chunk as Buffer);
    summary.update(`${h.digest('hex')}  ${f.name}\n`);
  }
  return `h1:${summary.digest('base64')}`;
}

/** `h1:` of a zip's entries under their names in the archive (Go's `dirhash.HashZip`: every entry, as listed). */
export function hashZip(zip: ZipArchive, maxEntryBytes?: number): Promise<string> {
  return hash1(zip.entries.map((e) => ({ name: e.name, open: () => zip.open(e, maxEntryBytes) })));
}

/** `h1:` of a module's go.mod as the checksum database lists it (`<module> <version>/go.mod h1:…`). */
export function hashGoMod(goMod: Buffer): Promise<string> {
  return hash1([{ name: 'go.mod', open: () => Readable.from([goMod]) }]);
}
