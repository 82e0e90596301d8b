#!/usr/bin/env node
// Stand-in for the MinIO client: `mc alias set NAME URL KEY SECRET`, `mc mb [--ignore-existing]
// NAME/BUCKET` (a SigV4-signed PUT Bucket), `mc ready NAME`. Aliases live in ~/.mc-standin.json;
// `local` defaults to http://localhost:9000 as in mc.
import fs from 'node:fs';
import os from 'node:os';
import crypto from 'node:crypto';
const file = `${os.homedir()}/.mc-standin.json`;
const aliases = { local: { url: 'http://localhost:9000', key: '', secret: '' }, ...(fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : {}) };
const [cmd, ...rest] = process.argv.slice(2);
const die = (m) => { console.error(`mc stand-in: ${m}`); process.exit(1); };
const hmac = (k, s) => crypto.createHmac('sha256', k).update(s).digest();
const sha = (s) => crypto.createHash('sha256').update(s).digest('hex');

async function signedFetch(a, method, path) {
  const u = new URL(path, a.url);
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8), region = 'us-east-1', payload = sha('');
  const headers = { host: u.host, 'x-amz-content-sha256': payload, 'x-amz-date': amzDate };
  const names = Object.keys(headers).sort();
  const creq = [method, u.pathname, '', ...names.map((n) => `${n}:${headers[n]}`), '', names.join(';'), payload].join('\n');
  const scope = `${day}/${region}/s3/aws4_request`;
  const sts = ['AWS4-HMAC-SHA256', amzDate, scope, sha(creq)].join('\n');
  let k = hmac(`AWS4${a.secret}`, day); k = hmac(k, region); k = hmac(k, 's3'); k = hmac(k, 'aws4_request');
  const sig = crypto.createHmac('sha256', k).update(sts).digest('hex');
  const auth = `AWS4-HMAC-SHA256 Credential=${a.key}/${scope}, SignedHeaders=${names.join(';')}, Signature=${sig}`;
  const { host, ...send } = headers;
  return fetch(u, { method, headers: { ...send, authorization: auth } });
}

if (cmd === 'alias' && rest[0] === 'set') {
  const [, name, url, key, secret] = rest;
  if (!name || !url) die('usage: mc alias set NAME URL KEY SECRET');
  aliases[name] = { url, key: key ?? '', secret: secret ?? '' };
  fs.writeFileSync(file, JSON.stringify(aliases));
  console.log(`Added \`${name}\` successfully.`);
} else if (cmd === 'mb') {
  const ignore = rest.includes('--ignore-existing') || rest.includes('-p');
  const target = rest.find((x) => !x.startsWith('-'));
  const [name, bucket] = (target ?? '').split('/');
  const a = aliases[name];
  if (!a || !bucket) die(`usage: mc mb [--ignore-existing] ALIAS/BUCKET (alias ${name} unknown?)`);
  const r = await signedFetch(a, 'PUT', `/${bucket}`);
  const body = await r.text();
  if (r.ok) console.log(`Bucket created successfully \`${target}\`.`);
  else if (ignore && r.status === 409) console.log(`Bucket \`${target}\` already exists.`);
  else die(`PUT /${bucket}: ${r.status} ${body.slice(0, 300)}`);
} else if (cmd === 'ready') {
  const a = aliases[rest[0]];
  if (!a) die(`unknown alias ${rest[0]}`);
  try { const r = await fetch(a.url, { signal: AbortSignal.timeout(3000) }); await r.arrayBuffer(); if (r.status >= 500) process.exit(1); }
  catch { process.exit(1); }
  console.log(`The cluster '${rest[0]}' is ready`);
} else die(`only "alias set", "mb" and "ready" are implemented (got ${process.argv.slice(2).join(' ')})`);
