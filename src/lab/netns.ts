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

function nicLines(port: string, sw: string, address: string, prefix: number, nic: Nic): string[] {
  return [
    'link set lo up',
    `link add ${nic.name} mtu ${nic.mtu} address ${underlayMac(address)} type veth peer name ${port} mtu ${nic.mtu} netns ${sw}`,
    `addr add ${address}/${prefix} dev ${nic.name}`,
    `link set ${nic.name} up`,
  ];
}

/** The NIC (eth0 unless `nic` says otherwise) in `netns` with `address`/prefix, cabled to port `port` of the switch. No default route. */
export async function plugIn(
  netns: string,
  sw: string,
  port: string,
  address: string,
  prefix: number,
  nic: Nic = DEFAULT_NIC,
): Promise<void> {
  await batch(netns, nicLines(port, sw, address, prefix, nic));
  await sysctl(netns, { [`net.ipv6.conf.${nic.name}.disable_ipv6`]: '1' });
  await batch(sw, [`link set ${port} master br0`, `link set ${port} up`]);
}

/**
 * Shell lines that give a host a brand-new network namespace with the same eth0 cabling, as
 * after a real reboot (nothing configured at run time survives). Run between two boots.
 */
export function replugShell(netns: string, sw: string, port: string, address: string, prefix: number, nic: Nic = DEFAULT_NIC): string[] {
  const lines = nicLines(port, sw, address, prefix, nic);
  return [
    `ip -n ${sw} link del ${port} 2>/dev/null`,
    `ip netns del ${netns} 2>/dev/null`,
    `ip netns add ${netns} || exit 1`,
    `printf '${lines.join('\\n')}\\n' | ip -n ${netns} -batch - || exit 1`,
    `ip netns exec ${netns} sysctl -q -w net.ipv6.conf.${nic.name}.disable_ipv6=1`,
    `ip -n ${sw} link set ${port} master br0 && ip -n ${sw} link set ${port} up || exit 1`,
  ];
}
