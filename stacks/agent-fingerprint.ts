// The agent's identity for the per-node resources' revision: a hash over every file the build's
// manifest says podnet ships (bundle, worker, BPF loader and object, TUN shim), so a change to
// any of them, not only the JS bundle, changes every node's revision and `cdktf deploy`
// re-delivers it.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_MANIFEST_NAME, agentIdentity, parseAgentManifest } from '../src/model';

/**
 * agentIdentity of dist/agent/manifest.json (16 hex digits). Unbuilt (no manifest), the
 * package version stands in, so synth works before a build. A manifest that exists but cannot
 * be read throws AgentManifestError: a revision must never silently stop covering the agent.
 */
export function agentFingerprint(projectRoot = join(__dirname, '..')): string {
  const manifestPath = join(projectRoot, 'dist', 'agent', AGENT_MANIFEST_NAME);
  if (existsSync(manifestPath)) return agentIdentity(parseAgentManifest(readFileSync(manifestPath, 'utf8'), manifestPath));
  const version = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')).version;
  return createHash('sha256').update(`version:${version}`).digest('hex').slice(0, 16);
}
