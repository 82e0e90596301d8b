#!/usr/bin/env node
// Stand-in for `minio server DIR [--console-address HOST:PORT] [--address HOST:PORT]`: s3rver
// (npm) on :9000 serving DIR, with MINIO_ROOT_USER registered as an access key. s3rver does not
// verify SigV4 signatures, only the access key id. The console address gets a placeholder page.
import { createRequire } from 'node:module';
import http from 'node:http';
const require = createRequire('/opt/s3rver/');
const S3rver = require('s3rver');
const account = require('s3rver/lib/models/account.js');

const args = process.argv.slice(2);
if (args[0] !== 'server') { console.error(`minio stand-in: only "server" is supported (got ${args.join(' ')})`); process.exit(2); }
let dir = '/data', address = ':9000', consoleAddr = null;
for (let i = 1; i < args.length; i++) {
  if (args[i] === '--console-address') consoleAddr = args[++i];
  else if (args[i] === '--address') address = args[++i];
  else if (!args[i].startsWith('-')) dir = args[i];
}
const port = (a) => Number(a.split(':').pop());
const user = process.env.MINIO_ROOT_USER ?? 'minioadmin';
const pass = process.env.MINIO_ROOT_PASSWORD ?? 'minioadmin';
account.DUMMY_ACCOUNT.createKeyPair(user, pass);
const s3 = new S3rver({ directory: dir, address: '0.0.0.0', port: port(address), silent: false, vhostBuckets: false });
await s3.run();
console.log(`minio stand-in (s3rver) on :${port(address)}, data ${dir}, access key ${user}`);
if (consoleAddr) http.createServer((q, r) => r.end('minio console stand-in\n')).listen(port(consoleAddr), '0.0.0.0');
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => s3.close().then(() => process.exit(0)));
