import type { FastifyReply, FastifyRequest } from 'fastify';
import { parseDigest, type Digest } from '../../lib/digest.js';
import { AppError, statusOf } from '../../lib/errors.js';
import { resolveFile } from '../../repos/resolve.js';
import type { Services } from '../../repos/services.js';
import type { FileRef, Served } from '../../repos/types.js';
import type { RepoDef } from '../../storage/meta/types.js';
import { sendServed } from '../../server/send.js';
import { nsMembers } from './manifests.js';
import { keys, type Target } from './names.js';
import { upstreamAuth, upstreamUrl } from './remote-auth.js';
import { removeFile } from '../../repos/writes.js';

/**
 * A blob of an image as a FileRef every kind understands: local repos keep a
 * repo-scoped link row (distribution's `_layers`); remote repos fetch
 * `/v2/<image>/blobs/<digest>` with a bearer token, verify the digest, cache it forever.
 */
export function blobRef(svc: Services, image: string, digest: Digest): FileRef {
  return {
    path: keys.layer(image, digest),
    expect: { digest },
    contentType: 'application/octet-stream',
    rejectHtml: false,
    locate: (r: RepoDef) => upstreamUrl(svc, r, image, 'blobs', digest),
    upstreamHeaders: (r: RepoDef) => upstreamAuth(svc, r, image),
  };
}

export async function findBlob(svc: Services, repo: RepoDef, image: string, digest: Digest, ns?: string): Promise<Served> {
  try {
    return await resolveFile(svc, repo, { ...blobRef(svc, image, digest), members: ns ? nsMembers(ns) : undefined });
  } catch (err) {
    if (statusOf(err) === 404) throw new AppError('BLOB_UNKNOWN', `blob unknown to registry: ${digest}`);
    throw err;
  }
}

export async function getBlob(req: FastifyRequest, reply: FastifyReply, svc: Services, t: Target, rawDigest: string) {
  const digest = parseDigest(rawDigest);
  const served = await findBlob(svc, t.repo, t.image, digest, t.ns);
  return sendServed(req, reply, served, svc, { contentType: 'application/octet-stream', headers: { 'docker-content-digest': digest } });
}

/** DELETE of a blob link (distribution allows it when deletes are enabled): the bytes stay for gc. */
export async function deleteBlob(reply: FastifyReply, svc: Services, repo: RepoDef, image: string, rawDigest: string) {
  const digest = parseDigest(rawDigest);
  const path = keys.layer(image, digest);
  if (!(await svc.meta.files.get(repo.name, path))) throw new AppError('BLOB_UNKNOWN', `blob unknown to registry: ${digest}`);
  await removeFile(svc, repo.name, path);
  return reply.code(202).header('docker-content-digest', digest).send();
}
