import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

import { which } from '../../helpers/which.js';

export { which };

export async function skopeo(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run('skopeo', args, { maxBuffer: 64 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`skopeo ${args.join(' ')}: ${e.stderr || e.message}`);
  }
}

export const TLS = ['--src-tls-verify=false', '--dest-tls-verify=false'];

/**
 * Closes a test server. A response streamed from a cache fill ends only once
 * the fill is committed, a moment after the client has every byte; fastify
 * closes idle keep-alive connections once, so keep closing them until it is done.
 */
export async function closeServer(srv: { app: { server: { closeIdleConnections(): void } }; close(): Promise<void> }): Promise<void> {
  await srv.close(); // the server itself keeps closing idle connections while it shuts down
}

/** Upload sessions that still hold parts in the store (none once every upload finished or was dropped). */
export async function uploadPartsLeft(srv: { svc: { blob: { parts: { sessions(): AsyncIterable<{ session: string }> } } } }): Promise<string[]> {
  const out: string[] = [];
  for await (const s of srv.svc.blob.parts.sessions()) out.push(s.session);
  return out;
}
