// What apply ships to each host: the files the build's manifest lists (the agent bundle, its
// userspace worker, the BPF loader and object, the TUN shim) and, for hosts without a usable
// Node.js of their own (see runtime-choice.ts), a Node.js runtime. Each is identified by content
// hash so that apply uploads only what differs, and the runtime is cached on the host by hash.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_BUNDLE_NAME, AGENT_BUNDLE_PATH, AGENT_MANIFEST_NAME, INSTALL_DIR, parseAgentManifest, RUNTIME_CACHE_DIR } from '../model';
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
  /** The agent bundle's build hash, as the running agent reports it in its status. */
  readonly agentBuild: string;
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export class MissingBuildError extends Error {
  override readonly name = 'MissingBuildError';
}

/**
 * The files the build's manifest lists (dist/agent/manifest.json, written by `npm run build`),
 * each checked against its recorded hash so that a half-finished rebuild is never shipped.
 * Throws MissingBuildError when the build or its manifest is missing or out of date.
 */
export function loadArtifacts(projectRoot = join(__dirname, '..')): ArtifactSet {
  const dist = join(projectRoot, 'dist', 'agent');
  const manifestPath = join(dist, AGENT_MANIFEST_NAME);
  if (!existsSync(manifestPath)) throw new MissingBuildError(`the agent build ${manifestPath} is missing: run \`npm run build\``);
  const manifest = parseAgentManifest(readFileSync(manifestPath, 'utf8'), manifestPath);
  const files = manifest.files.map((f): Artifact => {
    const localPath = join(dist, f.name);
    const actual = existsSync(localPath) ? sha256File(localPath) : 'missing';
    if (actual !== f.sha256)
      throw new MissingBuildError(
        `${localPath} does not match the build manifest (${actual === 'missing' ? 'missing' : 'changed since the build'}): run \`npm run build\``,
      );
    return { name: f.name, localPath, remotePath: `${INSTALL_DIR}/${f.name}`, sha256: f.sha256, mode: f.mode };
  });
  // The runtime is this very Node.js: hosts of the same architecture and glibc run it as is.
  const runtime = runtimePackage();
  const runtimeHash = runtime.sha256;
  return {
    agent: { ...files.find((f) => f.name === AGENT_BUNDLE_NAME)!, remotePath: AGENT_BUNDLE_PATH },
    extras: files.filter((f) => f.name !== AGENT_BUNDLE_NAME),
    agentBuild: manifest.build,
    runtime: {
      name: 'node',
      localPath: runtime.path,
      remotePath: `${RUNTIME_CACHE_DIR}/${runtimeHash.slice(0, 16)}/node`,
      sha256: runtimeHash,
      mode: 0o755,
    },
  };
}
