import { defineConfig } from 'vitest/config';

/** The black-box suite: HTTP only, against ARTIFACTAPI_URL (see scripts/e2e.sh and scripts/docker-e2e.sh). */
export default defineConfig({
  test: {
    root: new URL('.', import.meta.url).pathname,
    include: ['**/*.test.ts'],
    exclude: ['**/node_modules/**', 'fixtures/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
