// The CNI network config container runtimes read: what flannel's CNI plugin would hand to the
// bridge plugin at ADD time, written out ahead of time because podnet knows each node's subnet
// and MTU when it renders the host's desired state. One conflist per host, from the model.

/** What the conflist is computed from (all from the resolved network and node). */
export interface CniNetworkInput {
  /** The network's name: the conflist's `name`, the runtime's `--network`, host-local's data dir. */
  readonly network: string;
  /** The node's pod subnet, e.g. 10.244.1.0/24 (host-local's range). */
  readonly podCidr: string;
  /** The first address of the pod subnet, cni0's address and the pods' gateway, e.g. 10.244.1.1. */
  readonly gateway: string;
  /** The cluster CIDR, e.g. 10.244.0.0/16: a route in every pod, as flannel's delegate IPAM adds. */
  readonly clusterCidr: string;
  /** The tunnel MTU: pods' eth0 carries what flannel.ipip can without fragmenting. */
  readonly mtu: number;
  /** The bridge device, cni0. */
  readonly bridge: string;
}

/**
 * The spec version written. Debian 12's containernetworking-plugins 1.1.1 accept 0.1.0 to 1.0.0;
 * podman 4.3 and containerd 1.6 speak 1.0.0.
 */
export const CNI_VERSION = '1.0.0';

/**
 * The conflist's text (JSON, 2-space indented, trailing newline): the bridge plugin on cni0
 * with host-local IPAM over the node's subnet, then portmap for host ports.
 *
 * Like flannel's plugin with kube-flannel's delegate (`hairpinMode`, `isDefaultGateway`,
 * `isGateway`, the MTU, host-local with a route to the cluster CIDR). Unlike it, `ipMasq` is
 * always false: flannel sets it to `!FLANNEL_IPMASQ`, and the bridge plugin's masquerade rule
 * (`-s <pod> ! -d <node subnet> -j MASQUERADE`) then NATs traffic to other nodes' pods too.
 * Masquerading is podnet's nftables table's job, which never NATs pod-to-pod traffic.
 */
export function renderCniConflist(input: CniNetworkInput): string {
  const conflist = {
    cniVersion: CNI_VERSION,
    name: input.network,
    plugins: [
      {
        type: 'bridge',
        bridge: input.bridge,
        isGateway: true,
        isDefaultGateway: true,
        hairpinMode: true,
        ipMasq: false,
        mtu: input.mtu,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: input.podCidr, gateway: input.gateway }]],
          routes: [{ dst: input.clusterCidr }],
        },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
  return `${JSON.stringify(conflist, null, 2)}\n`;
}

/** File names libcni loads from a config directory (others, like editors' backups, are ignored). */
export function isCniConfigFileName(name: string): boolean {
  return /\.(conf|conflist|json)$/.test(name) && !name.startsWith('.');
}

/**
 * Config files a runtime taking the first file of the directory (kubelet, containerd, CRI-O)
 * would pick before podnet's: names that sort lower, as libcni sorts them (by name; code-unit
 * order is byte order for the ASCII names config files have).
 */
export function cniConfigsShadowing(fileNames: readonly string[], ownName: string): string[] {
  return fileNames.filter((n) => n !== ownName && isCniConfigFileName(n) && n < ownName).sort();
}

/**
 * A conflist in a few words for plans and drift reports, e.g. `network cluster, subnet
 * 10.244.1.0/24, mtu 1480`; `not a podnet conflist` when it does not have podnet's shape.
 */
export function describeCniConflist(text: string): string {
  try {
    const c = JSON.parse(text) as {
      name?: unknown;
      plugins?: Array<{ type?: unknown; mtu?: unknown; ipMasq?: unknown; ipam?: { ranges?: Array<Array<{ subnet?: unknown }>> } }>;
    };
    const bridge = c.plugins?.find((p) => p.type === 'bridge');
    if (!bridge) return 'not a podnet conflist (no bridge plugin)';
    const subnet = bridge.ipam?.ranges?.[0]?.[0]?.subnet;
    return `network ${String(c.name)}, subnet ${String(subnet)}, mtu ${String(bridge.mtu)}${bridge.ipMasq === true ? ', bridge ipMasq' : ''}`;
  } catch {
    return 'not valid JSON';
  }
}
