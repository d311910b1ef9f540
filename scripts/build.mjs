// Bundles the CLI and the agent with esbuild. The agent bundle is one file with its
// version and a build hash embedded, so hosts need no npm and drift can compare versions.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync, existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';

const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
mkdirSync('dist', { recursive: true });
let agentBuild;

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
  const final = await build({
    ...common,
    define: { PODNET_AGENT_VERSION: JSON.stringify(pkg.version), PODNET_AGENT_BUILD: JSON.stringify(hash) },
  });
  // Start from an empty dist/agent: the manifest lists what is there, so a file an older build
  // left (a renamed helper) must not be hashed into the revision and shipped to every host.
  rmSync('dist/agent', { recursive: true, force: true });
  mkdirSync('dist/agent', { recursive: true });
  writeFileSync('dist/agent/podnet-agent.js', final.outputFiles[0].contents);
  agentBuild = hash;
  // The userspace datapath's packet loop runs in a worker thread started from this file,
  // shipped beside the agent bundle (the agent finds it through its own __dirname).
  await build({
    entryPoints: ['agent/datapaths/userspace/packet-worker.ts'],
    outfile: 'dist/agent/podnet-userspace-worker.js',
    bundle: true,
    platform: 'node',
    target: 'node18',
    logLevel: 'warning',
  });
}

// eBPF datapath: tc programs + the podnet-bpf loader, into dist/agent/ (fails loudly without clang/libbpf).
(await import('node:child_process')).execFileSync('bash', ['scripts/build-native.sh'], { stdio: 'inherit' });

// Last, once every part is built: the manifest of what ships (format: src/model/agent-manifest.ts).
// The engine uploads exactly these files and the construct's revision covers all of them.
if (agentBuild) {
  const files = readdirSync('dist/agent')
    .filter((name) => name !== 'manifest.json' && !name.endsWith('.tmp') && statSync(`dist/agent/${name}`).isFile())
    .sort()
    .map((name) => ({
      name,
      sha256: createHash('sha256')
        .update(readFileSync(`dist/agent/${name}`))
        .digest('hex'),
      mode: statSync(`dist/agent/${name}`).mode & 0o111 ? 0o755 : 0o644,
    }));
  const manifest = { schema: 'podnet.dev/agent-manifest/v1', version: pkg.version, build: agentBuild, files };
  writeFileSync('dist/agent/manifest.json.tmp', JSON.stringify(manifest, null, 2) + '\n');
  renameSync('dist/agent/manifest.json.tmp', 'dist/agent/manifest.json');
}
