import { defineConfig } from 'vitest/config';

// Integration tests create real kernel objects (namespaces, cgroups, mounts)
// on a 2-core host: one file at a time, in forked workers, with timeouts
// sized for container starts rather than unit tests.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    maxWorkers: 1,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
    globalSetup: ['test/helpers/global-setup.ts'],
    reporters: process.env.CI ? ['verbose'] : ['default'],
  },
});
