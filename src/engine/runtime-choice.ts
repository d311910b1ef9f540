// Which Node.js runs the agent on one host: the host's own `node` or the one podnet ships.
// Pure: decided from the host reading and the network's `agentRuntime`.
//
// Shipping costs a fresh host ~100 MB through SSH and about a CPU-second on both ends; a host
// that already has a recent enough Node (Debian's `nodejs`, NodeSource, ...) needs none of it.
import { INSTALL_DIR, type AgentRuntimeChoice } from '../model';
import type { Artifact } from './artifacts';

/**
 * The oldest Node the agent runs on: the bundle targets Node 18 (esbuild `target: 'node18'`,
 * util.parseArgs from 18.3, N-API 8 for the userspace shim); 18.19 is Debian 12's `nodejs`,
 * the oldest tested (the lab runs 18.20.4).
 */
export const MIN_HOST_NODE: readonly [major: number, minor: number] = [18, 19];

/**
 * Where the agent's unit cannot run a binary from: ProtectHome hides /home, /root and
 * /run/user; snaps need confinement the unit's capability set does not allow; and podnet's own
 * directory would make the runtime link point at itself.
 */
const OUT_OF_REACH = ['/home/', '/root/', '/run/user/', '/snap/', `${INSTALL_DIR}/`];

/** A path on the way to the host's `node` that root does not hold alone (host-reading's HOST_NODE_PROBE). */
export interface UntrustedPath {
  readonly path: string;
  readonly uid: number;
  /** Permission bits in octal, as `find -printf %m` prints them, e.g. `775`. */
  readonly mode: string;
}

/**
 * The `node` on the host's PATH, as the host reading found it: with the binary it resolves to
 * and its version, or marked as the runtime a running agent already uses (checked when linked),
 * or with the paths to it that someone other than root could change (then it was not run).
 */
export type HostNode =
  | {
      readonly path: string;
      /** `readlink -f` of path. */
      readonly realPath: string;
      /** As `node --version` prints it, e.g. `v18.19.0`; empty when it did not run. */
      readonly version: string;
    }
  | { readonly path: string; readonly linked: true }
  | {
      readonly path: string;
      readonly realPath: string;
      readonly untrusted: readonly UntrustedPath[];
      /** The check itself failed on the host (find failed): trusted no more than an untrusted path. */
      readonly unchecked?: true;
    };

export type RuntimeChoice =
  | { readonly kind: 'host'; readonly path: string; readonly version: string }
  /** `why`: why not the host's own `node` (the plan says it). */
  | { readonly kind: 'bundled'; readonly artifact: Artifact; readonly why: string };

export class RuntimeUnavailableError extends Error {
  override readonly name = 'RuntimeUnavailableError';
}

/** Why the host's `node` cannot run the agent, or undefined when it can. */
export function hostNodeProblem(node: HostNode | undefined): string | undefined {
  if (!node) return 'the host has no `node` on its PATH';
  if ('linked' in node) return undefined;
  if ('untrusted' in node) {
    const each = node.untrusted.map((u) => `${u.path} (uid ${u.uid}, mode ${u.mode})`);
    const who = each.length > 0 ? `which someone other than root could replace: ${each.join(', ')}` : 'which root alone may not own';
    const unchecked = node.unchecked ? ' (the check could not finish on the host: find failed, or more symlinks than it follows)' : '';
    return `${node.path} is ${node.realPath}, ${who}${unchecked}; the agent runs as root`;
  }
  const where = OUT_OF_REACH.find((dir) => `${node.realPath}/`.startsWith(dir));
  if (where) return `${node.path} is ${node.realPath}, under ${where}, where the agent's sandboxed unit cannot run it`;
  const m = /^v(\d+)\.(\d+)\.\d+/.exec(node.version);
  if (!m) return `${node.path} did not report a version (\`${node.path} --version\` printed '${node.version}')`;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  if (major < MIN_HOST_NODE[0] || (major === MIN_HOST_NODE[0] && minor < MIN_HOST_NODE[1]))
    return `${node.path} is ${node.version}; the agent needs Node.js >= ${MIN_HOST_NODE.join('.')}`;
  return undefined;
}

/** The runtime for a host; throws RuntimeUnavailableError when `host` is asked for and unusable. */
export function chooseRuntime(policy: AgentRuntimeChoice, node: HostNode | undefined, bundled: Artifact): RuntimeChoice {
  if (policy === 'bundled') return { kind: 'bundled', artifact: bundled, why: "agentRuntime is 'bundled'" };
  const problem = hostNodeProblem(node);
  if (!problem) return { kind: 'host', path: node!.path, version: 'version' in node! ? node.version : 'in use' };
  if (policy === 'auto') return { kind: 'bundled', artifact: bundled, why: problem };
  const fix =
    node && 'untrusted' in node
      ? 'make that node and every directory on its way owned by root and writable by root alone'
      : `install nodejs >= ${MIN_HOST_NODE.join('.')} there`;
  throw new RuntimeUnavailableError(
    `${problem} (agentRuntime is 'host': ${fix}, or set agentRuntime to 'auto' or 'bundled' to ship podnet's)`,
  );
}

/** Where the host's runtime symlink must point for this choice. */
export function runtimeTarget(choice: RuntimeChoice): string {
  return choice.kind === 'host' ? choice.path : choice.artifact.remotePath;
}
