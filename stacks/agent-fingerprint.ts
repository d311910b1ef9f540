// The agent's identity for null_resource triggers: when the bundled agent changes, every
// node's resource is replaced and `podnet apply` re-delivers it.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Hash of the built agent bundle (dist/agent/podnet-agent.js), or of the package version if unbuilt. */
export function agentFingerprint(projectRoot = join(__dirname, '..')): string {
  const bundle = join(projectRoot, 'dist', 'agent', 'podnet-agent.js');
  const hash = createHash('sha256');
  if (existsSync(bundle)) hash.update(readFileSync(bundle));
  else hash.update(`version:${JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')).version}`);
  return hash.digest('hex').slice(0, 16);
}
