// The lab's network: an underlay switch (bridge br0 in its own namespace), one namespace per host
// with eth0 on that switch, and a workstation namespace. Veths are created inside a lab namespace
// with their peer placed straight into the switch namespace, so the machine's own namespace never
// holds a lab link, address or route.
import { existsSync, readdirSync } from 'node:fs';
import { must, run } from './exec';

export function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}
export function listNetns(): string[] {
  return existsSync('/run/netns') ? readdirSync('/run/netns') : [];
}

export async function addNetns(name: string): Promise<void> {
  await must(['ip', 'netns', 'add', name]);
}

export async function delNetns(name: string): Promise<void> {
  if (!netnsExists(name)) return;
  const r = await run(['ip', 'netns', 'del', name]);
  if (r.code !== 0 && netnsExists(name)) throw new Error(`ip netns del ${name}: ${r.stderr.trim()}`);
}

async function batch(netns: string, lines: string[]): Promise<void> {
  await must(['ip', '-n', netns, '-batch', '-'], { input: lines.join('\n') + '\n' });
}

async function sysctl(netns: string, settings: Record<string, string>): Promise<void> {
  await must(['ip', 'netns', 'exec', netns, 'sysctl', '-q', '-w', ...Object.entries(settings).map(([k, v]) => `${k}=${v}`)]);
}

/** The switch: bridge br0, no address; IPv6 off so the underlay carries only what the lab sends. */
export async function setupSwitch(sw: string): Promise<void> {
  await sysctl(sw, { 'net.ipv6.conf.all.disable_ipv6': '1', 'net.ipv6.conf.default.disable_ipv6': '1' });
  await batch(sw, ['link set lo up', 'link add br0 type bridge', 'link set br0 up']);
}

/**
 * A fixed MAC per underlay address (locally administered), so a host that reboots into a new
 * namespace keeps its MAC and its peers' ARP caches stay right, as with a real NIC.
 */
export function underlayMac(address: string): string {
  const [, , c, d] = address.split('.').map(Number);
  return `02:70:6e:00:${c!.toString(16).padStart(2, '0')}:${d!.toString(16).padStart(2, '0')}`;
}

/** The host's underlay NIC: eth0 at 1500 unless a host profile says otherwise (profiles.ts). */
export interface Nic {
  readonly name: string;
  readonly mtu: number;
}
export const DEFAULT_NIC: Nic = { name: 'eth0', mtu: 1500 };

/**
 * A router between a host and the switch (profile trait `pmtu<N>`): a namespace the host's cable
 * plugs into, with a second cable to the switch. It is transparent for addressing (the host keeps
 * its address in the underlay subnet: proxy ARP on both legs, a /32 route to the host, the subnet
 * on the switch leg) but forwards at most `mtu` bytes each way: both routes carry `mtu lock N`,
 * so a DF packet larger than N gets ICMP "fragmentation needed" (type 3 code 4, next-hop MTU N)
 * from `address`, quoting it, as from a real router on a smaller path. Both legs keep the NIC's MTU.
 */
export interface PathRouter {
  readonly netns: string;
  /** Its own underlay address: the source of its ICMP errors. */
  readonly address: string;
  readonly mtu: number;
}
/** The router's leg to the switch. */
const ROUTER_UP = 'up0';
/** The router's leg to its host: the host's cable (a capture on it sees what the host sends, before the router's hop). */
export const ROUTER_DOWN = 'dn0';

function nicLines(peer: string, peerNetns: string, address: string, prefix: number, nic: Nic): string[] {
  return [
    'link set lo up',
    `link add ${nic.name} mtu ${nic.mtu} address ${underlayMac(address)} type veth peer name ${peer} mtu ${nic.mtu} netns ${peerNetns}`,
    `addr add ${address}/${prefix} dev ${nic.name}`,
    `link set ${nic.name} up`,
  ];
}

/** The subnet `address`/`prefix` lies in, e.g. 192.168.0.0/24. */
export function subnetOf(address: string, prefix: number): string {
  const n = address.split('.').reduce((a, o) => a * 256 + Number(o), 0);
  const net = prefix === 0 ? 0 : n - (n % 2 ** (32 - prefix));
  return `${[24, 16, 8, 0].map((s) => Math.floor(net / 2 ** s) % 256).join('.')}/${prefix}`;
}

/** The router's route to its host, once the host's cable is in (its leg dn0 comes with that cable). */
function routerHostLines(r: PathRouter, address: string): string[] {
  return [
    `link set ${ROUTER_DOWN} up`,
    proxyAtOnce(ROUTER_DOWN),
    `route add ${address}/32 dev ${ROUTER_DOWN} src ${r.address} mtu lock ${r.mtu}`,
  ];
}

/** Proxy ARP answers at once on `dev` (not after a random proxy_delay of up to 0.8 s): a netns has no neigh/default sysctls. */
const proxyAtOnce = (dev: string): string => `ntable change name arp_cache dev ${dev} proxy_delay 0`;

/** The router's settings: forwarding, proxy ARP on every leg made after, no rp_filter, no IPv6. */
const ROUTER_SYSCTLS: Record<string, string> = {
  'net.ipv4.ip_forward': '1',
  'net.ipv4.conf.all.rp_filter': '0',
  'net.ipv4.conf.default.rp_filter': '0',
  'net.ipv4.conf.default.proxy_arp': '1',
  'net.ipv6.conf.all.disable_ipv6': '1',
  'net.ipv6.conf.default.disable_ipv6': '1',
};

/** The router namespace `r.netns` (made by the caller), cabled to switch port `port`; the host plugs into it with plugIn. */
export async function setUpRouter(r: PathRouter, sw: string, port: string, address: string, prefix: number, nic: Nic): Promise<void> {
  await sysctl(r.netns, ROUTER_SYSCTLS);
  await batch(r.netns, [
    'link set lo up',
    `link add ${ROUTER_UP} mtu ${nic.mtu} type veth peer name ${port} mtu ${nic.mtu} netns ${sw}`,
    `addr add ${r.address}/32 dev ${ROUTER_UP}`,
    proxyAtOnce(ROUTER_UP),
    `link set ${ROUTER_UP} up`,
    `route add ${subnetOf(address, prefix)} dev ${ROUTER_UP} src ${r.address} mtu lock ${r.mtu}`,
  ]);
  await batch(sw, [`link set ${port} master br0`, `link set ${port} up`]);
}

/** How a namespace is plugged into the underlay: its NIC, with `address`/`prefix`, cabled to switch `sw` at `port` or to `router`. */
export interface Cable {
  readonly netns: string;
  readonly sw: string;
  readonly port: string;
  readonly address: string;
  readonly prefix: number;
  /** eth0 at 1500 unless a host profile says otherwise. */
  readonly nic?: Nic;
  /** The router the cable runs through instead of the switch (set up first with setUpRouter). */
  readonly router?: PathRouter;
}

/** The NIC's lines, its far end in the router (leg dn0) or on the switch (its port). */
const cableNicLines = (c: Cable): string[] =>
  c.router
    ? nicLines(ROUTER_DOWN, c.router.netns, c.address, c.prefix, c.nic ?? DEFAULT_NIC)
    : nicLines(c.port, c.sw, c.address, c.prefix, c.nic ?? DEFAULT_NIC);

/** The cable's NIC in `c.netns`, its far end up on the switch or in the router. No default route. */
export async function plugIn(c: Cable): Promise<void> {
  await batch(c.netns, cableNicLines(c));
  await sysctl(c.netns, { [`net.ipv6.conf.${(c.nic ?? DEFAULT_NIC).name}.disable_ipv6`]: '1' });
  if (c.router) await batch(c.router.netns, routerHostLines(c.router, c.address));
  else await batch(c.sw, [`link set ${c.port} master br0`, `link set ${c.port} up`]);
}

/**
 * Shell lines that give a host a brand-new network namespace with the same cabling (to the
 * switch, or to its router, which stays), as after a real reboot (nothing configured at run time
 * survives). Run between two boots.
 */
export function replugShell(c: Cable): string[] {
  const printf = (lines: string[], ns: string): string => `printf '${lines.join('\\n')}\\n' | ip -n ${ns} -batch - || exit 1`;
  return [
    c.router ? `ip -n ${c.router.netns} link del ${ROUTER_DOWN} 2>/dev/null` : `ip -n ${c.sw} link del ${c.port} 2>/dev/null`,
    `ip netns del ${c.netns} 2>/dev/null`,
    `ip netns add ${c.netns} || exit 1`,
    printf(cableNicLines(c), c.netns),
    `ip netns exec ${c.netns} sysctl -q -w net.ipv6.conf.${(c.nic ?? DEFAULT_NIC).name}.disable_ipv6=1`,
    c.router
      ? printf(routerHostLines(c.router, c.address), c.router.netns)
      : `ip -n ${c.sw} link set ${c.port} master br0 && ip -n ${c.sw} link set ${c.port} up || exit 1`,
  ];
}
