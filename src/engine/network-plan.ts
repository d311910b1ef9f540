// `podnet plan` as one value for the whole run (like terraform's plans.Plan): each host's plan,
// the hosts that could not be read or planned, and whether anything would change. Also the
// offline plan: each host's desired state from the manifest alone.
import {
  desiredHostState,
  findNode,
  resolveManifest,
  UnderlayError,
  type DesiredHostState,
  type Network,
  type NetworkManifest,
  type NetworkNode,
} from '../model';
import type { ArtifactSet } from './artifacts';
import { hostErrorOf, type HostError } from './host-error';
import { hostPlanHasChanges, OtherNetworkRunningError, planHost, type HostPlan } from './host-plan';
import { RuntimeUnavailableError } from './runtime-choice';
import type { EngineSession, NetworkSnapshot } from './session';

/** A host the run could not work on, and why. */
export interface NodeError {
  readonly node: string;
  readonly error: HostError;
}

export interface NetworkPlan {
  readonly network: string;
  /** Plans of the hosts that were read, in the order asked for. */
  readonly hosts: readonly HostPlan[];
  /** Hosts that could not be read, whose runtime cannot be chosen, or that cannot carry the tunnel as declared. */
  readonly errors: readonly NodeError[];
  /**
   * True when apply would change any host that was planned (`--detailed-exitcode` exits 2).
   * Says nothing about the hosts in `errors`: check those first.
   */
  readonly hasChanges: boolean;
}

/** The plan from hosts already read. Pure; throws only on a bug (an error planHost does not expect). */
export function planFromSnapshot(snapshot: NetworkSnapshot, artifacts: ArtifactSet): NetworkPlan {
  const hosts: HostPlan[] = [];
  const errors: NodeError[] = [];
  for (const { read, target } of snapshot.hosts) {
    if (!read.ok) {
      errors.push({ node: read.node, error: read.error });
      continue;
    }
    try {
      hosts.push(planHost(target, read.reading, artifacts));
    } catch (err) {
      if (!(err instanceof RuntimeUnavailableError || err instanceof UnderlayError || err instanceof OtherNetworkRunningError)) throw err;
      errors.push({ node: read.node, error: hostErrorOf(err) });
    }
  }
  return { network: snapshot.network.name, hosts, errors, hasChanges: hosts.some(hostPlanHasChanges) };
}

/** Reads `nodes` over SSH (read-only) and plans each. */
export async function planNetwork(session: EngineSession, nodes: readonly NetworkNode[], artifacts: ArtifactSet): Promise<NetworkPlan> {
  return planFromSnapshot(await session.readNetwork(nodes), artifacts);
}

/** Each host's desired state, from the manifest alone (`plan --offline`): no host is contacted. */
export interface OfflinePlan {
  /** Resolved from the manifest (leases as synth allocated them). */
  readonly network: Network;
  readonly hosts: ReadonlyArray<{ readonly node: string; readonly address: string; readonly state: DesiredHostState }>;
}

/** `wanted`: node names, all when empty. Throws UnknownNodeError for a name not in the network. */
export function planOffline(manifest: NetworkManifest, wanted: readonly string[] = []): OfflinePlan {
  const network = resolveManifest(manifest);
  const nodes = wanted.length ? network.nodes.filter((n) => wanted.includes(n.name)) : network.nodes;
  for (const name of wanted) findNode(network, name);
  return { network, hosts: nodes.map((n) => ({ node: n.name, address: n.address, state: desiredHostState(network, n.name) })) };
}
