// What apply ships to each host: the agent bundle, its native BPF helper and object, and, for
// hosts without a usable Node.js of their own (see runtime-choice.ts), a Node.js runtime. Each is identified by content hash so that
// apply uploads only what differs, and the runtime is cached on the host by hash.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_BUNDLE_PATH, INSTALL_DIR, RUNTIME_CACHE_DIR } from '../model';
import { runtimePackage } from './runtime-package';

export interface Artifact {
  readonly name: string;
  readonly localPath: string;
  readonly remotePath: string;
  readonly sha256: string;
  readonly mode: number;
}

export interface ArtifactSet {
  readonly agent: Artifact;
  /**
   * podnet-bpf and the BPF object (the ebpf datapath), podnet-tun.node and
   * podnet-userspace-worker.js (the userspace datapath), when built.
   */
  readonly extras: readonly Artifact[];
  readonly runtime: Artifact;
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export class MissingBuildError extends Error {
  override readonly name = 'MissingBuildError';
}

export function loadArtifacts(projectRoot = join(__dirname, '..')): ArtifactSet {
  const dist = join(projectRoot, 'dist', 'agent');
  const agentPath = join(dist, 'podnet-agent.js');
  if (!existsSync(agentPath)) throw new MissingBuildError(`the agent bundle ${agentPath} is missing: run \`npm run build\``);
  const file = (name: string, mode: number): Artifact => {
    const localPath = join(dist, name);
    return { name, localPath, remotePath: `${INSTALL_DIR}/${name}`, sha256: sha256File(localPath), mode };
  };
  const extras = [['podnet-bpf', 0o755], ['podnet-ipip.bpf.o', 0o644], ['podnet-tun.node', 0o644], ['podnet-userspace-worker.js', 0o644]]
    .filter(([name]) => existsSync(join(dist, name as string)))
    .map(([name, mode]) => file(name as string, mode as number));
  // The runtime is this very Node.js: hosts of the same architecture and glibc run it as is.
  const runtime = runtimePackage();
  const runtimeHash = runtime.sha256;
  return {
    agent: { ...file('podnet-agent.js', 0o644), remotePath: AGENT_BUNDLE_PATH },
    extras,
    runtime: { name: 'node', localPath: runtime.path, remotePath: `${RUNTIME_CACHE_DIR}/${runtimeHash.slice(0, 16)}/node`, sha256: runtimeHash, mode: 0o755 },
  };
}
