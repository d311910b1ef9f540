// Unit tests run in parallel; lab tests boot real hosts and so run one file at a time
// (each file uses its own lab name, but two cores cannot boot two labs quickly).
/** @type {import('jest').Config} */
const transform = { '^.+\\.ts$': '<rootDir>/test/esbuild-jest-transform.js' };
module.exports = {
  projects: [
    { displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'], transform, testEnvironment: 'node' },
    { displayName: 'lab', testMatch: ['<rootDir>/test/lab/**/*.test.ts'], transform, testEnvironment: 'node' },
  ],
  maxWorkers: 1,
};
