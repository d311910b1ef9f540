// A validated network with every node's pod subnet decided: the one value the constructs,
// the engine, the drift check and the agent all compute desired host state from.
import { AgentRuntimeChoice, DatapathChoice, NetworkSpec, SshSpec } from './spec';
import { cidrContainsAddress, cidrSize, formatCidr, parseCidr, parseIpv4, prefixMask, type Ipv4Cidr } from './ipv4';
import { allocatePodSubnets, type SubnetPool } from './subnet-allocator';
import { validateNetworkSpec } from './validate';
import { DEFAULT_CNI_CONF_DIR } from './host-layout';
import { NetworkValidationError } from './validation-error';

export interface ResolvedSsh {
  readonly user: string;
  readonly port: number;
  readonly privateKeyPath?: string;
  readonly knownHostsPath?: string;
  readonly acceptNewHostKeys: boolean;
}

export interface NetworkNode {
  readonly name: string;
  readonly address: string;
  readonly podCidr: string;
  /** The declared underlay interface (the node's, else the network's); undefined: found on the host (model/underlay.ts). */
  readonly underlayInterface?: string;
  readonly datapath: DatapathChoice;
  readonly ssh: ResolvedSsh;
}

export interface Network {
  readonly name: string;
  readonly clusterCidr: string;
  readonly subnetLength: number;
  readonly backend: { readonly type: 'ipip'; readonly directRouting: boolean };
  /** The declared tunnel MTU; undefined: each host's underlay MTU - 20 (model/underlay.ts). */
  readonly mtu?: number;
  /** `mtu`: the declared underlay MTU; undefined: each host's interface MTU. */
  readonly underlay: { readonly mtu?: number; readonly prefixLength: number };
  readonly ipMasq: boolean;
  /** Where the agent writes the CNI conflist. */
  readonly cniConfDir: string;
  readonly agentRuntime: AgentRuntimeChoice;
  readonly nodes: readonly NetworkNode[];
}

function cidr(text: string): Ipv4Cidr {
  const parsed = parseCidr(text);
  if (!parsed.ok) throw new Error(`internal: ${text} passed validation but does not parse`);
  return parsed.cidr;
}

function resolveSsh(base: SshSpec | undefined, override: SshSpec | undefined): ResolvedSsh {
  const merged = { ...base, ...override };
  return {
    user: merged.user ?? 'root',
    port: merged.port ?? 22,
    ...(merged.privateKeyPath !== undefined ? { privateKeyPath: merged.privateKeyPath } : {}),
    ...(merged.knownHostsPath !== undefined ? { knownHostsPath: merged.knownHostsPath } : {}),
    acceptNewHostKeys: merged.acceptNewHostKeys ?? false,
  };
}

export function subnetPoolOf(spec: NetworkSpec): SubnetPool {
  const cluster = cidr(spec.clusterCidr);
  const subnetLength = spec.subnetLength ?? 24;
  const step = 2 ** (32 - subnetLength);
  return {
    cluster,
    subnetLength,
    min: spec.subnetMin ? cidr(spec.subnetMin).base : cluster.base,
    max: spec.subnetMax ? cidr(spec.subnetMax).base : cluster.base + cidrSize(cluster) - step,
  };
}

/**
 * Validates `spec` and allocates pod subnets, keeping `leases` (node name -> CIDR that node
 * holds now). Throws NetworkValidationError naming every bad field.
 */
export function resolveNetwork(spec: unknown, leases: Readonly<Record<string, string>> = {}): Network {
  const problems = validateNetworkSpec(spec);
  if (problems.length > 0) throw new NetworkValidationError(problems);
  const valid = spec as NetworkSpec;

  const leaseMap = new Map<string, Ipv4Cidr>();
  for (const [node, text] of Object.entries(leases)) {
    const parsed = parseCidr(text);
    if (parsed.ok) leaseMap.set(node, parsed.cidr);
  }
  const pool = subnetPoolOf(valid);
  const allocation = allocatePodSubnets(
    pool,
    valid.nodes.map((n) => ({ name: n.name, ...(n.podCidr ? { explicit: cidr(n.podCidr) } : {}) })),
    leaseMap,
  );
  const defaultInterface = valid.underlay?.interface;
  return {
    name: valid.name,
    clusterCidr: valid.clusterCidr,
    subnetLength: pool.subnetLength,
    backend: { type: 'ipip', directRouting: valid.backend.directRouting ?? false },
    ...(valid.mtu !== undefined ? { mtu: valid.mtu } : {}),
    underlay: {
      ...(valid.underlay?.mtu !== undefined ? { mtu: valid.underlay.mtu } : {}),
      prefixLength: valid.underlay?.prefixLength ?? 24,
    },
    ipMasq: valid.ipMasq ?? true,
    cniConfDir: valid.cniConfDir ?? DEFAULT_CNI_CONF_DIR,
    agentRuntime: valid.agentRuntime ?? 'auto',
    nodes: valid.nodes.map((n) => ({
      name: n.name,
      address: n.address,
      podCidr: formatCidr(allocation.get(n.name)!),
      ...((n.underlayInterface ?? defaultInterface) ? { underlayInterface: n.underlayInterface ?? defaultInterface } : {}),
      datapath: n.datapath ?? valid.backend.datapath ?? 'auto',
      ssh: resolveSsh(valid.ssh, n.ssh),
    })),
  };
}

/** The spec with every node's subnet pinned: what the engine installs on hosts as agent config. */
export function pinnedSpec(spec: NetworkSpec, network: Network): NetworkSpec {
  const byName = new Map(network.nodes.map((n) => [n.name, n.podCidr]));
  return { ...spec, nodes: spec.nodes.map((n) => ({ ...n, podCidr: byName.get(n.name)! })) };
}

/**
 * What the agent on every host gets as its network: the pinned spec without what only the
 * engine uses. SSH settings (key and known_hosts paths of whoever applies) and `agentRuntime`
 * are left out, so the file on the host is a function of the model alone: applying the same
 * model from another workstation writes the same bytes and restarts nothing, and no
 * workstation path lands in a world-readable file on the hosts.
 */
export function agentNetworkSpec(spec: NetworkSpec, network: Network): NetworkSpec {
  const { ssh: _ssh, agentRuntime: _runtime, ...pinned } = pinnedSpec(spec, network);
  return { ...pinned, nodes: pinned.nodes.map(({ ssh: _nodeSsh, ...node }) => node) };
}

/** Is `address` on the same underlay subnet as `local` (for directRouting)? */
export function sameUnderlaySubnet(local: string, peer: string, prefixLength: number): boolean {
  const mask = prefixMask(prefixLength);
  return cidrContainsAddress({ base: (parseIpv4(local)! & mask) >>> 0, length: prefixLength }, parseIpv4(peer)!);
}
