import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/helpers/setup.ts'],
    // Kills RGW clusters left by test processes that died without afterAll (test/helpers/rgw.ts).
    globalSetup: ['test/helpers/global-teardown.ts'],
    testTimeout: 180_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two cores: integration tests start servers and run Nix; more workers only contend.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
