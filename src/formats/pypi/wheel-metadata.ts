import type { Digest } from '../../lib/digest.js';
import { isContainedPath } from '../../lib/archive-paths.js';
import { AppError } from '../../lib/errors.js';
import type { BlobStore } from '../../storage/blob/types.js';
import { openZip } from '../../lib/zip.js';

function bad(msg: string): AppError {
  return new AppError('BAD_REQUEST', `invalid wheel: ${msg}`);
}

/**
 * Reads `<name>-<version>.dist-info/METADATA` out of a stored wheel with a few
 * ranged reads (lib/zip.ts), so a large wheel is never read whole. Any entry whose
 * name would unpack outside the install directory makes the wheel invalid.
 */
export async function readWheelMetadata(blob: BlobStore, d: Digest, size: number, maxBytes: number): Promise<Buffer> {
  const zip = await openZip(blob, d, size, 'wheel');
  const outside = zip.entries.find((e) => !isContainedPath(e.name));
  if (outside) throw bad(`entry ${JSON.stringify(outside.name.slice(0, 200))} is outside the wheel`);
  const found = zip.entries.filter((e) => /^[^/]+\.dist-info\/METADATA$/.test(e.name));
  if (found.length > 1) throw bad('more than one .dist-info/METADATA');
  if (found.length === 0) throw bad('no .dist-info/METADATA');
  if (found[0].size > maxBytes || found[0].compressedSize > maxBytes) throw new AppError('TOO_LARGE', 'wheel METADATA is too large');
  return zip.read(found[0], maxBytes);
}

/** Core metadata headers (RFC 822 style; the body after the blank line is the description). */
export function parseCoreMetadata(buf: Buffer): Map<string, string[]> {
  const text = buf.toString('utf8');
  const headerEnd = text.search(/\r?\n\r?\n/);
  const head = headerEnd >= 0 ? text.slice(0, headerEnd) : text;
  const out = new Map<string, string[]>();
  let last: string | undefined;
  for (const line of head.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && last) {
      const vals = out.get(last)!;
      vals[vals.length - 1] += `\n${line.trim()}`;
      continue;
    }
    const i = line.indexOf(':');
    if (i <= 0) continue;
    last = line.slice(0, i).trim().toLowerCase();
    const vals = out.get(last) ?? [];
    vals.push(line.slice(i + 1).trim());
    out.set(last, vals);
  }
  return out;
}
