// Replaced at bundle time by scripts/build.mjs (esbuild `define`); the fallbacks are for
// running the agent's modules unbundled in tests.
declare const PODNET_AGENT_VERSION: string | undefined;
declare const PODNET_AGENT_BUILD: string | undefined;

export const AGENT_VERSION = typeof PODNET_AGENT_VERSION === 'string' ? PODNET_AGENT_VERSION : '0.0.0-dev';
export const AGENT_BUILD = typeof PODNET_AGENT_BUILD === 'string' ? PODNET_AGENT_BUILD : 'unbundled';
