// One run of plan/apply/drift/destroy against a manifest: SSH targets, host readings,
// leases from hosts, and the resolved network. The side-effecting edge of the engine.
import {
  agentConfigPath,
  cniConfLocation,
  parseAgentConfig,
  resolveManifest,
  type Network,
  type NetworkManifest,
  type NetworkNode,
} from '../model';
import { SshPool, type SshConnection, type SshTarget } from '../ssh';
import { hostReadScript, parseHostReading, type HostReading } from './host-reading';
import { hostTargets, type HostTarget } from './host-plan';
import { hostErrorOf, type HostError } from './host-error';

export interface SshOverrides {
  readonly privateKeyPath?: string;
  readonly knownHostsPath?: string;
  readonly acceptNewHostKeys?: boolean;
  readonly connectTimeoutMs?: number;
}

export function sshTargetOf(node: NetworkNode, overrides: SshOverrides = {}): SshTarget {
  const ssh = node.ssh;
  const privateKeyPath = overrides.privateKeyPath ?? ssh.privateKeyPath;
  const knownHostsPath = overrides.knownHostsPath ?? ssh.knownHostsPath;
  return {
    host: node.address,
    port: ssh.port,
    user: ssh.user,
    ...(privateKeyPath ? { privateKeyPath } : {}),
    ...(knownHostsPath ? { knownHostsPath } : {}),
    acceptNewHostKeys: overrides.acceptNewHostKeys ?? ssh.acceptNewHostKeys,
    sudo: ssh.user !== 'root',
    connectTimeoutMs: overrides.connectTimeoutMs ?? 10_000,
    label: node.name,
  };
}

/** The pod subnet a host's installed agent config gives that host, if readable. */
function leaseIn(configText: string, node: string): string | undefined {
  try {
    const config = parseAgentConfig(configText);
    const self = config.network.nodes.find((n) => n.name === node);
    return config.node === node ? self?.podCidr : undefined;
  } catch {
    return undefined; // an unreadable config holds no lease; apply replaces it
  }
}

export type HostRead =
  | { readonly node: string; readonly ok: true; readonly reading: HostReading }
  | { readonly node: string; readonly ok: false; readonly error: HostError };

/** One host as a run found it: its node (with leases resolved), what it should have, what it has. */
export interface HostSnapshot {
  readonly node: NetworkNode;
  readonly target: HostTarget;
  readonly read: HostRead;
}

/** The first phase of plan, apply and drift: the network as hosts hold it, and each host read. */
export interface NetworkSnapshot {
  readonly network: Network;
  /** In the order of the nodes asked for. */
  readonly hosts: readonly HostSnapshot[];
}

export class EngineSession {
  readonly pool: SshPool;
  private readonly targetsByNode = new Map<string, SshTarget>();

  /** `maxParallel`: hosts worked on at once, by every phase (read, apply, destroy). */
  constructor(
    readonly manifest: NetworkManifest,
    private readonly overrides: SshOverrides = {},
    maxParallel = 16,
  ) {
    this.pool = new SshPool({ maxParallel });
  }

  /** Nodes as synth declared them (before host leases): who to contact. */
  declaredNetwork(): Network {
    return resolveManifest(this.manifest);
  }

  sshTarget(node: NetworkNode): SshTarget {
    let t = this.targetsByNode.get(node.name);
    if (!t) {
      t = sshTargetOf(node, this.overrides);
      this.targetsByNode.set(node.name, t);
    }
    return t;
  }

  connection(node: NetworkNode): Promise<SshConnection> {
    return this.pool.get(this.sshTarget(node));
  }

  /** Reads the given nodes in parallel; a host that fails is reported, not thrown. */
  private async readHosts(nodes: readonly NetworkNode[]): Promise<HostRead[]> {
    const declared = this.declaredNetwork();
    const script = hostReadScript(declared.name, cniConfLocation(declared.name, declared.cniConfDir));
    const outcomes = await this.pool.forEachHost(
      nodes.map((n) => this.sshTarget(n)),
      async (conn) => parseHostReading((await conn.exec(script, { timeoutMs: 30_000 })).stdout),
    );
    return outcomes.map((o, i) =>
      o.ok ? { node: nodes[i]!.name, ok: true, reading: o.value } : { node: nodes[i]!.name, ok: false, error: hostErrorOf(o.error) },
    );
  }

  /**
   * The network resolved with the leases hosts hold now, so no live subnet ever moves. When
   * the command works on some nodes only (`--node`, as cdktf runs it), the other declared
   * nodes' leases are read too (their config file only): a node's routes to its peers must
   * use the subnets those peers really hold. A peer that cannot be reached keeps the lease
   * the manifest gives it.
   */
  private async resolveWithHostLeases(reads: readonly HostRead[]): Promise<Network> {
    const leases: Record<string, string> = {};
    for (const r of reads) {
      const lease = r.ok && r.reading.config ? leaseIn(r.reading.config, r.node) : undefined;
      if (lease) leases[r.node] = lease;
    }
    const read = new Set(reads.map((r) => r.node));
    const others = this.declaredNetwork().nodes.filter((n) => !read.has(n.name));
    if (others.length > 0) {
      const path = agentConfigPath(this.manifest.network.name);
      const outcomes = await this.pool.forEachHost(
        others.map((n) => this.sshTarget(n)),
        async (conn) => (await conn.exec(`cat ${path} 2>/dev/null`, { allowFailure: true, timeoutMs: 15_000 })).stdout,
      );
      outcomes.forEach((o, i) => {
        const lease = o.ok && o.value ? leaseIn(o.value, others[i]!.name) : undefined;
        if (lease) leases[others[i]!.name] = lease;
      });
    }
    return resolveManifest(this.manifest, leases);
  }

  /** Reads `nodes` (at most maxParallel at once), resolves leases, renders each host's target. */
  async readNetwork(nodes: readonly NetworkNode[]): Promise<NetworkSnapshot> {
    const reads = await this.readHosts(nodes);
    const network = await this.resolveWithHostLeases(reads);
    const targets = new Map(this.targets(network).map((t) => [t.node, t]));
    const resolved = new Map(network.nodes.map((n) => [n.name, n]));
    return { network, hosts: reads.map((read) => ({ node: resolved.get(read.node)!, target: targets.get(read.node)!, read })) };
  }

  targets(network: Network): HostTarget[] {
    return hostTargets(this.manifest.network, network);
  }

  close(): Promise<void> {
    return this.pool.closeAll();
  }
}
