// "Desired state of host X": computed once, here, from the resolved network. The agent
// converges to it, the planner diffs it against live state, the drift check reports on it.
import { formatCidr, formatIpv4, formatNetmask, nthAddress, parseCidr } from './ipv4';
import { BRIDGE_DEVICE, cniConfLocation, SUBNET_ENV_PATH, TUNNEL_DEVICE } from './host-layout';
import { renderCniConflist } from './cni-config';
import { renderNftTable } from './masquerade';
import { sameUnderlaySubnet, type Network, type NetworkNode } from './network';
import type { DatapathChoice } from './spec';
import { assumedUnderlay, type HostUnderlay } from './underlay';
import { peerPathFromRoutes, type HostRoute, type PeerPath } from './peer-paths';
import { renderSubnetEnv } from './subnet-env';

export interface DesiredRoute {
  /** Peer pod subnet, e.g. 10.244.2.0/24. */
  readonly destination: string;
  /** Peer underlay address. */
  readonly gateway: string;
  /** flannel.ipip (encapsulated) or the underlay interface (directRouting, same subnet). */
  readonly device: string;
  /** Tunnel routes are onlink: the gateway is not on the tunnel device's own subnet. */
  readonly onlink: boolean;
  readonly peer: string;
}

export interface DesiredPeer {
  readonly node: string;
  readonly address: string;
  readonly podCidr: string;
  /** True when traffic to this peer is encapsulated (false for directRouting peers). */
  readonly tunnelled: boolean;
  /** Why it is tunnelled or direct (directRouting's decision, from the host's routes where read). */
  readonly why: string;
}

export interface DesiredHostState {
  readonly network: string;
  readonly node: string;
  readonly datapath: DatapathChoice;
  readonly clusterCidr: string;
  readonly podCidr: string;
  readonly tunnel: { readonly device: string; readonly local: string; readonly mtu: number; readonly address: string };
  /** The node's address, and the underlay found on the host (or assumed offline): model/underlay.ts. */
  readonly underlay: HostUnderlay & { readonly address: string };
  /**
   * cni0. `mac` is fixed (see bridgeMac): a bridge without one takes the lowest MAC of its ports,
   * so removing a pod could change the gateway MAC every other pod has cached.
   */
  readonly bridge: { readonly device: string; readonly address: string; readonly mac: string };
  readonly peers: readonly DesiredPeer[];
  readonly routes: readonly DesiredRoute[];
  readonly subnetEnv: { readonly path: string; readonly content: string };
  /** Full `nft -f` text of podnet's table (forward accept, and masquerade when ipMasq). */
  readonly nftTable: string;
  /** The CNI conflist container runtimes read: `path` is `dir`/`file`. */
  readonly cni: { readonly dir: string; readonly file: string; readonly path: string; readonly content: string };
}

/**
 * cni0's MAC: locally administered `0a:58` then the gateway's IPv4 bytes (OVN-Kubernetes'
 * convention), e.g. 0a:58:0a:f4:01:01 for 10.244.1.1. Set explicitly, it never follows the
 * bridge's ports: without it, removing the pod whose veth had the lowest MAC changes the bridge's
 * MAC, and every other pod keeps sending its replies to the old gateway MAC until its ARP entry
 * expires (seen in the lab: 15-30 s of lost replies from pods on that node).
 */
export function bridgeMac(gateway: string): string {
  return ['0a', '58', ...gateway.split('.').map((o) => Number(o).toString(16).padStart(2, '0'))].join(':');
}

export class UnknownNodeError extends Error {
  override readonly name = 'UnknownNodeError';
}

export function findNode(network: Network, name: string): NetworkNode {
  const node = network.nodes.find((n) => n.name === name);
  if (!node)
    throw new UnknownNodeError(
      `node '${name}' is not in network '${network.name}' (nodes: ${network.nodes.map((n) => n.name).join(', ')})`,
    );
  return node;
}

/**
 * `underlay`: what discoverUnderlay found on the host; without it, the declarations alone
 * (assumedUnderlay), as the offline plan and the deploy revision need. `hostRoutes`: the host's
 * main routing table, from which directRouting decides per peer as flannel does (direct only
 * when the host's route to the peer has no gateway); without it, the model's underlay prefix.
 */
export function desiredHostState(
  network: Network,
  nodeName: string,
  underlay?: HostUnderlay,
  hostRoutes?: readonly HostRoute[],
): DesiredHostState {
  const node = findNode(network, nodeName);
  const u = underlay ?? assumedUnderlay(network, node);
  const subnet = parseCidr(node.podCidr);
  if (!subnet.ok) throw new Error(`internal: resolved podCidr ${node.podCidr} does not parse`);
  const gateway = formatIpv4(nthAddress(subnet.cidr, 1));

  const peers: DesiredPeer[] = network.nodes
    .filter((n) => n.name !== node.name)
    .map((n) => ({ node: n.name, address: n.address, podCidr: n.podCidr, ...peerPath(network, node.address, n.address, hostRoutes) }));

  return {
    network: network.name,
    node: node.name,
    datapath: node.datapath,
    clusterCidr: network.clusterCidr,
    podCidr: node.podCidr,
    tunnel: { device: TUNNEL_DEVICE, local: node.address, mtu: u.tunnelMtu, address: `${formatCidr(subnet.cidr).split('/')[0]}/32` },
    underlay: { ...u, address: node.address },
    bridge: { device: BRIDGE_DEVICE, address: `${gateway}/${subnet.cidr.length}`, mac: bridgeMac(gateway) },
    peers,
    routes: peers.map((p) => ({
      destination: p.podCidr,
      gateway: p.address,
      device: p.tunnelled ? TUNNEL_DEVICE : u.device,
      onlink: p.tunnelled,
      peer: p.node,
    })),
    subnetEnv: {
      path: SUBNET_ENV_PATH,
      content: renderSubnetEnv({
        network: network.clusterCidr,
        subnet: `${gateway}/${subnet.cidr.length}`,
        mtu: u.tunnelMtu,
        ipMasq: network.ipMasq,
      }),
    },
    nftTable: renderNftTable({ network: network.name, clusterCidr: network.clusterCidr, podCidr: node.podCidr, ipMasq: network.ipMasq }),
    cni: {
      ...cniConfLocation(network.name, network.cniConfDir),
      content: renderCniConflist({
        network: network.name,
        podCidr: node.podCidr,
        gateway,
        clusterCidr: network.clusterCidr,
        mtu: u.tunnelMtu,
        bridge: BRIDGE_DEVICE,
      }),
    },
  };
}

function peerPath(network: Network, local: string, peer: string, hostRoutes: readonly HostRoute[] | undefined): PeerPath {
  if (!network.backend.directRouting) return { tunnelled: true, why: 'directRouting is off' };
  if (hostRoutes) return peerPathFromRoutes(peer, hostRoutes);
  const same = sameUnderlaySubnet(local, peer, network.underlay.prefixLength);
  return {
    tunnelled: !same,
    why: `${same ? 'inside' : 'outside'} this node's /${network.underlay.prefixLength} (the declared underlay prefix; the host's routes decide once read)`,
  };
}

/** One row of `route -n` as flannel's walkthrough shows it. */
export interface RouteTableRow {
  readonly destination: string;
  readonly gateway: string;
  readonly genmask: string;
  readonly flags: string;
  readonly iface: string;
}

/** The cluster rows of `route -n` this host should show: peer routes and the local cni0 subnet. */
export function routeTableRows(state: DesiredHostState): RouteTableRow[] {
  const rows: RouteTableRow[] = state.routes.map((r) => {
    const [dest, len] = r.destination.split('/');
    return { destination: dest!, gateway: r.gateway, genmask: formatNetmask(Number(len)), flags: 'UG', iface: r.device };
  });
  const [localDest, localLen] = state.podCidr.split('/');
  rows.push({
    destination: localDest!,
    gateway: '0.0.0.0',
    genmask: formatNetmask(Number(localLen)),
    flags: 'U',
    iface: state.bridge.device,
  });
  return rows.sort((a, b) => compareDotted(a.destination, b.destination));
}

function compareDotted(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 4; i++) if (pa[i] !== pb[i]) return pa[i]! - pb[i]!;
  return 0;
}
