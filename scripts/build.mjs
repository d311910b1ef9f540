// Bundles the CLI and the agent with esbuild. The agent bundle is one file with its
// version and a build hash embedded, so hosts need no npm and drift can compare versions.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';

const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
mkdirSync('dist', { recursive: true });

await build({
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/podnet.js',
  bundle: true,
  platform: 'node',
  target: 'node20',
  external: ['cpu-features', './crypto/build/Release/sshcrypto.node'],
  logLevel: 'warning',
});

if (existsSync('agent/main.ts')) {
  // Two passes: the hash covers the bundle built with a placeholder, then is embedded.
  const common = { entryPoints: ['agent/main.ts'], bundle: true, platform: 'node', target: 'node18', write: false, logLevel: 'warning' };
  const first = await build({ ...common, define: { PODNET_AGENT_VERSION: JSON.stringify(pkg.version), PODNET_AGENT_BUILD: '"0"' } });
  const hash = createHash('sha256').update(first.outputFiles[0].contents).digest('hex').slice(0, 16);
  const final = await build({ ...common, define: { PODNET_AGENT_VERSION: JSON.stringify(pkg.version), PODNET_AGENT_BUILD: JSON.stringify(hash) } });
  mkdirSync('dist/agent', { recursive: true });
  writeFileSync('dist/agent/podnet-agent.js', final.outputFiles[0].contents);
  // The userspace datapath's packet loop runs in a worker thread started from this file,
  // shipped beside the agent bundle (the agent finds it through its own __dirname).
  await build({ entryPoints: ['agent/datapaths/userspace/packet-worker.ts'], outfile: 'dist/agent/podnet-userspace-worker.js', bundle: true, platform: 'node', target: 'node18', logLevel: 'warning' });
}

// eBPF datapath: tc programs + the podnet-bpf loader, into dist/agent/ (fails loudly without clang/libbpf).
(await import('node:child_process')).execFileSync('bash', ['scripts/build-native.sh'], { stdio: 'inherit' });
