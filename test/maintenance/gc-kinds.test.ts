import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FormatHandler, GcContext } from '../../src/formats/types.js';
import { formatGc } from '../../src/maintenance/gc.js';
import type { RepoDef } from '../../src/storage/meta/types.js';
import { startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;

beforeAll(async () => {
  srv = await startServer();
  await srv.addRepo({ name: 'r-local', format: 'rpm', kind: 'local' });
  await srv.addRepo({ name: 'r-remote', format: 'rpm', kind: 'remote', upstream: 'http://127.0.0.1:9/' });
  await srv.addRepo({ name: 'r-virtual', format: 'rpm', kind: 'virtual', members: ['r-local', 'r-remote'] });
  await srv.addRepo({ name: 'h-local', format: 'helm', kind: 'local' });
});
afterAll(() => srv.close());

describe('format gc hooks', () => {
  it('are given exactly the repos of their format and of the kinds they name', async () => {
    const seen: string[][] = [];
    const ctx: GcContext = { svc: srv.svc, dryRun: true, now: Date.now(), report: () => {} };
    const hook = (kinds: RepoDef['kind'][]): FormatHandler => ({
      name: 'rpm', routes: [], gc: { kinds, run: async (_c, repos) => void seen.push(repos.map((r) => r.name).sort()) },
    });
    await formatGc(ctx, hook(['local']));
    await formatGc(ctx, hook(['local', 'virtual']));
    await formatGc(ctx, hook(['remote']));
    await formatGc(ctx, hook(['local', 'remote', 'virtual']));
    expect(seen).toEqual([['r-local'], ['r-local', 'r-virtual'], ['r-remote'], ['r-local', 'r-remote', 'r-virtual']]);
  });
});
