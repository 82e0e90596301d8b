import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import jsyaml from 'js-yaml';

export const sha256hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A chart package as `helm package` writes it: `<name>/Chart.yaml`, values and a template, gzipped tar. */
export async function chartTgz(chart: Record<string, unknown>, o: { dir?: string; extra?: Record<string, string> } = {}): Promise<Buffer> {
  const dir = o.dir ?? String(chart.name);
  const pack = tar.pack();
  const files: Record<string, string> = {
    [`${dir}/Chart.yaml`]: jsyaml.dump(chart),
    [`${dir}/values.yaml`]: 'replicas: 1\n',
    [`${dir}/templates/deployment.yaml`]: 'kind: Deployment\n',
    ...o.extra,
  };
  for (const [name, body] of Object.entries(files)) pack.entry({ name, mtime: new Date(0) }, body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

/** The multipart body `helm cm-push` sends: one `chart` file field. */
export function cmPushBody(file: string, tgz: Buffer, extra: { name: string; filename: string; body: Buffer }[] = []): { body: Buffer; contentType: string } {
  const boundary = `----helmpush${Date.now()}`;
  const parts: Buffer[] = [];
  for (const p of [{ name: 'chart', filename: file, body: tgz }, ...extra]) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"; filename="${p.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`));
    parts.push(p.body, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** helm's User-Agent on every request. */
export const HELM_HEADERS = { 'user-agent': 'Helm/3.14.0' };

export interface IndexEntry {
  version: string;
  urls: string[];
  digest?: string;
  created?: string;
  description?: string;
  [field: string]: unknown;
}

export interface IndexDoc {
  apiVersion: string;
  entries: Record<string, IndexEntry[]>;
  generated: string;
  serverInfo?: { contextPath: string };
}

/** `helm repo add` / `helm repo update`: GET index.yaml. `doc` is undefined unless it answered 200. */
export async function getIndex(repoUrl: string, headers: Record<string, string> = {}): Promise<{ res: Response; text: string; doc: IndexDoc }> {
  const res = await fetch(`${repoUrl}/index.yaml`, { headers: { ...HELM_HEADERS, ...headers } });
  const text = await res.text();
  return { res, text, doc: (res.status === 200 ? jsyaml.load(text) : undefined) as IndexDoc };
}

/** `helm cm-push`: fetch index.yaml for serverInfo.contextPath, then POST <contextPath>/api/charts. */
export async function cmPush(host: string, repoUrl: string, file: string, tgz: Buffer, force = false) {
  const { doc } = await getIndex(repoUrl);
  const contextPath = doc?.serverInfo?.contextPath ?? '';
  const { body, contentType } = cmPushBody(file, tgz);
  return fetch(`${host}${contextPath}/api/charts${force ? '?force' : ''}`, {
    method: 'POST', headers: { ...HELM_HEADERS, 'content-type': contentType }, body: new Uint8Array(body),
  });
}

/**
 * `helm pull`: resolve the entry's first URL against the repo URL (helm adds the trailing slash),
 * then download it.
 */
export async function helmPull(repoUrl: string, index: IndexDoc, name: string, version: string) {
  const entry = index.entries[name]?.find((e) => e.version === version);
  if (!entry) throw new Error(`${name} ${version} not in the index`);
  const url = new URL(entry.urls[0], `${repoUrl}/`).toString();
  const res = await fetch(url, { headers: HELM_HEADERS });
  return { res, body: Buffer.from(await res.arrayBuffer()), url };
}
