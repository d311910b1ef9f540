// node1 of the reference network as iproute2 and nft print it: shared by the diff and reconciler tests.
import { parseAddresses, parseLinks, parseRoutes, type LiveHostState } from '../../src/host/live-state';
import type { DesiredHostState } from '../../src/model';

// Shapes as iproute2 6.1 prints them (captured on a lab host, trimmed).
export const linksJson = JSON.stringify([
  { ifindex: 1, ifname: 'lo', flags: ['LOOPBACK', 'UP', 'LOWER_UP'], mtu: 65536 },
  { ifindex: 2, ifname: 'eth0', flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], mtu: 1500, linkinfo: { info_kind: 'veth' } },
  {
    ifindex: 3,
    ifname: 'flannel.ipip',
    flags: ['POINTOPOINT', 'MULTICAST', 'NOARP', 'UP'],
    mtu: 1480,
    linkinfo: { info_kind: 'tun', info_data: { type: 'tun' } },
  },
  {
    ifindex: 4,
    ifname: 'cni0',
    flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
    mtu: 1500,
    address: '0a:58:0a:f4:01:01',
    linkinfo: { info_kind: 'bridge' },
  },
]);
export const addrJson = JSON.stringify([
  { ifname: 'eth0', addr_info: [{ family: 'inet', local: '192.168.0.81', prefixlen: 24 }] },
  { ifname: 'flannel.ipip', addr_info: [{ family: 'inet', local: '10.244.1.0', prefixlen: 32 }] },
  { ifname: 'cni0', addr_info: [{ family: 'inet', local: '10.244.1.1', prefixlen: 24 }] },
]);
// Routes as `ip -N` prints them (numeric protocol and scope; 2 is the kernel's RTPROT_KERNEL).
export const routesJson = JSON.stringify([
  { dst: '10.244.0.0/24', gateway: '192.168.0.80', dev: 'flannel.ipip', protocol: '152', flags: ['onlink'] },
  { dst: '10.244.1.0/24', dev: 'cni0', protocol: '2', scope: '253', prefsrc: '10.244.1.1', flags: [] },
  { dst: '10.244.2.0/24', gateway: '192.168.0.82', dev: 'flannel.ipip', protocol: '152', flags: ['onlink'] },
  { dst: '192.168.0.0/24', dev: 'eth0', protocol: '2', scope: '253', flags: [] },
]);
export const nftListed = `table ip podnet_cluster {
\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tip saddr 10.244.0.0/16 accept
\t\tip daddr 10.244.0.0/16 accept
\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 return
\t\tip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random,random
\t\tip saddr != 10.244.0.0/16 ip daddr 10.244.1.0/24 return
\t\tip saddr != 10.244.0.0/16 ip daddr 10.244.0.0/16 masquerade fully-random,random
\t}
}`;

/** node1 of the reference network exactly as desired. */
export function liveInSync(state: DesiredHostState): LiveHostState {
  return {
    links: parseLinks(linksJson),
    addresses: parseAddresses(addrJson),
    routes: parseRoutes(routesJson),
    subnetEnv: state.subnetEnv.content,
    nftTable: nftListed,
    ipForward: true,
    cniConfig: state.cni.content,
    cniConfFiles: [state.cni.file, '99-loopback.conf'],
  };
}
