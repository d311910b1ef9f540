// One interface for the three ways podnet carries IP-in-IP, shaped like flannel's
// pkg/backend: each datapath lives in its own folder and knows nothing of the others;
// `auto` chooses among them in one place (./select.ts). As flannel's BackendCtor receives its
// ExternalInterface, a datapath is bound to its host when it is created: no call can reach a
// datapath before it knows the host.
import type { DatapathCounters, DatapathKind, DesiredHostState } from '../../src/model';

// The kinds and counters are part of the agent's status, whose one home is the model.
export type { DatapathCounters, DatapathKind, PeerCounters } from '../../src/model';

/** A peer node as a datapath needs it: where its pods live and where to send them. */
export interface DatapathPeer {
  readonly node: string;
  /** The peer's underlay IPv4 address (outer destination). */
  readonly address: string;
  /** The peer's pod subnet, e.g. "10.244.2.0/24". */
  readonly podCidr: string;
}

/** What every datapath is given about this host. */
export interface DatapathHost {
  /** The tunnel device name, "flannel.ipip". */
  readonly tunnelDevice: string;
  /** This node's underlay IPv4 address (outer source). */
  readonly localAddress: string;
  /** The underlay interface, e.g. "eth0". */
  readonly underlayDevice: string;
  /** Tunnel MTU (underlay MTU - 20 unless set). */
  readonly mtu: number;
  /** `<pod subnet>.0/32`, put on the tunnel device as flannel does. */
  readonly tunnelAddress: string;
  /** This node's pod subnet, e.g. "10.244.1.0/24". */
  readonly podCidr: string;
  /** The cluster CIDR, e.g. "10.244.0.0/16". */
  readonly clusterCidr: string;
}

/** The one place a DatapathHost is made from the desired state (agent start, reconcile, teardown). */
export function toDatapathHost(state: DesiredHostState): DatapathHost {
  return {
    tunnelDevice: state.tunnel.device,
    localAddress: state.tunnel.local,
    underlayDevice: state.underlay.device,
    mtu: state.tunnel.mtu,
    tunnelAddress: state.tunnel.address,
    podCidr: state.podCidr,
    clusterCidr: state.clusterCidr,
  };
}

/**
 * Whether a datapath can run on this host, in three outcomes as cilium/ebpf's feature probes:
 * `unsupported` when the host lacks what it needs (no ipip module, no BPF, no /dev/net/tun),
 * `failed` when the probe could not tell (no permission, a file missing from the bundle, a tool
 * that crashed). Reasons are shown in `podnet-agent status`.
 */
export type ProbeResult =
  | { readonly outcome: 'supported' }
  | { readonly outcome: 'unsupported'; readonly reason: string }
  | { readonly outcome: 'failed'; readonly reason: string };

export const SUPPORTED: ProbeResult = { outcome: 'supported' };
export const unsupported = (reason: string): ProbeResult => ({ outcome: 'unsupported', reason });
export const probeFailed = (reason: string): ProbeResult => ({ outcome: 'failed', reason });

/** A probe's outcome in words: "not supported: <reason>" or "probe failed: <reason>". */
export function describeProbe(probe: ProbeResult): string {
  return probe.outcome === 'supported'
    ? 'supported'
    : `${probe.outcome === 'unsupported' ? 'not supported' : 'probe failed'}: ${probe.reason}`;
}

/** A datapath bound to one host (given to DatapathFactory.create). */
export interface Datapath {
  readonly kind: DatapathKind;
  /**
   * Creates or adopts the tunnel device (name, MTU, address, up) and whatever carries packets
   * (programs, maps, sockets). Idempotent: called at start and on every reconcile; adopting
   * what a previous agent left (pinned programs, the device) must not interrupt traffic.
   */
  ensure(): Promise<void>;
  /** Replaces the peer set in place; traffic to peers that stay is never interrupted. */
  setPeers(peers: readonly DatapathPeer[]): Promise<void>;
  /** Optional, cheap: re-read what changes without the agent (e.g. local pods) after a netlink event. */
  refresh?(): Promise<void>;
  counters(): Promise<DatapathCounters>;
  /**
   * Optional: why this datapath cannot carry traffic now although it was set up (programs not
   * attached, maps not pinned, worker not running); empty when it can. Called on every pass,
   * so cheap (one read). The agent reports `degraded` with these reasons.
   */
  health?(): Promise<readonly string[]>;
  /** Stops carrying packets but leaves the network in place (SIGTERM: a restart must not flap it). */
  close(): Promise<void>;
  /** Removes the device and everything this datapath created, nothing else (`podnet-agent teardown`). */
  teardown(): Promise<void>;
}

export interface DatapathFactory {
  readonly kind: DatapathKind;
  /** Cheap, side-effect-free as far as possible: can this datapath run on `host`? Never rejects. */
  probe(host: DatapathHost): Promise<ProbeResult>;
  /** The datapath bound to `host`; creates nothing on the host until ensure(). `log` takes one line. */
  create(host: DatapathHost, log: (line: string) => void): Datapath;
}
