// The network as a user declares it (constructs, manifest files). Optional fields have the
// defaults documented here; `resolveNetwork` turns a spec into a validated `Network`.

/** Which datapath carries IP-in-IP on a host. `auto` takes the first of kernel, ebpf, userspace that works. */
export type DatapathChoice = 'auto' | 'kernel' | 'ebpf' | 'userspace';
export const DATAPATH_CHOICES: readonly DatapathChoice[] = ['auto', 'kernel', 'ebpf', 'userspace'];

/**
 * Which Node.js runs the agent on a host. `auto`: the host's own `node` when it is recent
 * enough (see MIN_HOST_NODE_MAJOR), else podnet ships its own (~100 MB, once per host, cached
 * by hash). `host`: the host's `node` or a clear error. `bundled`: always ship podnet's.
 */
export type AgentRuntimeChoice = 'auto' | 'host' | 'bundled';
export const AGENT_RUNTIME_CHOICES: readonly AgentRuntimeChoice[] = ['auto', 'host', 'bundled'];

export interface SshSpec {
  /** Login user (default `root`); a non-root user runs commands through `sudo -n`. */
  readonly user?: string;
  /** Default 22. */
  readonly port?: number;
  /** Private key file; without it the ssh-agent is used. */
  readonly privateKeyPath?: string;
  /** OpenSSH known_hosts file (default `~/.ssh/known_hosts`). Host keys are always verified. */
  readonly knownHostsPath?: string;
  /** Trust on first use: record unknown host keys instead of refusing them. Default false. */
  readonly acceptNewHostKeys?: boolean;
}

export interface NodeSpec {
  /** Host name (RFC 1123 label), used for messages, leases and the CDKTF resource. */
  readonly name: string;
  /** Underlay IPv4 address: the outer source/destination of tunnelled packets and the SSH target. */
  readonly address: string;
  /** A fixed pod subnet; otherwise the node keeps its lease or takes the lowest free subnet. */
  readonly podCidr?: string;
  /** Underlay interface on the host (default: the network's `underlay.interface`, else the one holding `address`, found on the host). */
  readonly underlayInterface?: string;
  /** Overrides the network's datapath for this node. */
  readonly datapath?: DatapathChoice;
  /** Overrides the network's SSH settings for this node, field by field. */
  readonly ssh?: SshSpec;
}

export interface BackendSpec {
  /** Only `ipip` (flannel's IPIP backend) is implemented. */
  readonly type: 'ipip';
  /** Like flannel's DirectRouting: peers on the same underlay subnet are routed without encapsulation. */
  readonly directRouting?: boolean;
  /** Default `auto`. */
  readonly datapath?: DatapathChoice;
}

export interface UnderlaySpec {
  /** What the underlay carries (default: the underlay interface's MTU on each host); the tunnel MTU defaults to this minus 20. */
  readonly mtu?: number;
  /** Prefix length of the underlay subnet (default 24): decides which peers are "same subnet" for directRouting. */
  readonly prefixLength?: number;
  /** Default underlay interface (default: on each host, the interface holding the node's address, as flanneld finds it). */
  readonly interface?: string;
}

export interface NetworkSpec {
  /** Network name (DNS label): names the agent's unit, config file and nftables table. */
  readonly name: string;
  /** The cluster CIDR, e.g. 10.244.0.0/16 (flannel's Network). */
  readonly clusterCidr: string;
  /** Length of each node's pod subnet (default 24; flannel's SubnetLen). */
  readonly subnetLength?: number;
  /** Lowest pod subnet handed out (default: the first in the cluster CIDR). */
  readonly subnetMin?: string;
  /** Highest pod subnet handed out (default: the last in the cluster CIDR). */
  readonly subnetMax?: string;
  readonly backend: BackendSpec;
  /** Tunnel MTU for every node; default per host: its underlay MTU - 20 (the IPv4 outer header). */
  readonly mtu?: number;
  readonly underlay?: UnderlaySpec;
  /** Masquerade pod traffic leaving the cluster CIDR (default true; flannel's --ip-masq). */
  readonly ipMasq?: boolean;
  /**
   * Where the agent writes the CNI network config container runtimes read (default
   * `/etc/cni/net.d`): an absolute path, created if missing.
   */
  readonly cniConfDir?: string;
  /** SSH defaults for every node. */
  readonly ssh?: SshSpec;
  /** Which Node.js runs the agent (default `auto`: the host's when recent enough, else shipped). */
  readonly agentRuntime?: AgentRuntimeChoice;
  readonly nodes: readonly NodeSpec[];
}
