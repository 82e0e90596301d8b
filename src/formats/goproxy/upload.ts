import { AppError } from '../../lib/errors.js';
import { writeLocalRow, writeTarget } from '../../repos/local.js';
import type { Call } from '../../server/pipeline.js';
import { ingestBuffer, ingestStream } from '../../storage/ingest.js';
import { paths, type ZipMeta } from './index-doc.js';
import { modulePathError, unescapePath, versionPathError } from './module.js';
import { removeFiles } from '../../repos/writes.js';
import { checkModuleZip, MAX_ZIP_BYTES } from './zipfile.js';

/** The module path of an upload's URL, checked: 400 (not 404) for a path go would refuse. */
function uploadModule(escaped: string): string {
  const path = unescapePath(escaped);
  if (path === null) throw new AppError('BAD_REQUEST', `${escaped}: malformed case-encoding (write upper-case letters as !x)`);
  const err = modulePathError(path);
  if (err) throw new AppError('BAD_REQUEST', err);
  return path;
}

/**
 * `PUT /REPO/<module>/@v/<version>.zip`: a module zip as `go mod download` would receive it. The
 * body streams into the blob store; the zip is then read back (central directory and go.mod,
 * bounded) and checked by the module zip rules. Only then are `.info` (Time = upload time),
 * `.mod` (the zip's go.mod) and `.zip` recorded, in one transaction, so `@v/list` never names a
 * version whose files are not all there. A refused zip leaves an unreferenced blob for gc.
 */
export async function putModuleZip(c: Call, mod: string, version: string) {
  const { svc, req } = c;
  const target = await writeTarget(svc, c.ctx.repo);
  const modulePath = uploadModule(mod);
  const versionErr = versionPathError(modulePath, version);
  if (versionErr) throw new AppError('BAD_REQUEST', versionErr);
  const zipPath = paths.file(mod, version, 'zip');
  if (await svc.meta.files.get(target.name, zipPath)) {
    throw new AppError('CONFLICT', `${modulePath}@${version} already exists in ${target.name} and cannot be overwritten`);
  }
  const maxSize = Math.min(MAX_ZIP_BYTES, svc.config.uploads.max_size || MAX_ZIP_BYTES);
  const zip = await ingestStream(svc, req.raw, { maxSize });
  const { goMod } = await checkModuleZip(svc, zip.digest, zip.size, modulePath, version);
  const time = new Date();
  const modBody = goMod ?? Buffer.from(`module ${modulePath}\n`);
  const infoBody = Buffer.from(`${JSON.stringify({ Version: version, Time: time.toISOString() })}\n`);
  const modBlob = await ingestBuffer(svc, modBody);
  const infoBlob = await ingestBuffer(svc, infoBody);
  const meta: ZipMeta = { kind: 'gozip', module: modulePath, version, time: time.toISOString() };
  await svc.meta.tx(async (m) => {
    for (const b of [modBlob, infoBlob, zip]) await m.blobs.touch(b.digest, b.size);
    await writeLocalRow(m, target, zipPath, zip.digest, zip.size, { contentType: 'application/zip', meta: { ...meta }, immutable: true });
    await writeLocalRow(m, target, paths.file(mod, version, 'info'), infoBlob.digest, infoBlob.size, { contentType: 'application/json', meta: { kind: 'goinfo' } });
    await writeLocalRow(m, target, paths.file(mod, version, 'mod'), modBlob.digest, modBlob.size, { contentType: 'text/plain; charset=utf-8', meta: { kind: 'gomod' } });
  });
  return { repo: target.name, module: modulePath, version, digest: zip.digest, size: zip.size, time: time.toISOString() };
}

/** `DELETE /REPO/<module>/@v/<version>.zip`: the version's three rows go together. */
export async function deleteModule(c: Call, mod: string, version: string) {
  const { svc } = c;
  const target = await writeTarget(svc, c.ctx.repo);
  const zipPath = paths.file(mod, version, 'zip');
  if (!(await svc.meta.files.get(target.name, zipPath))) throw new AppError('NOT_FOUND', `${mod}@${version} not found in ${target.name}`);
  await removeFiles(svc, target.name, [zipPath, paths.file(mod, version, 'mod'), paths.file(mod, version, 'info')]);
  return { deleted: true };
}
