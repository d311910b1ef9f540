// flannel.ipip as a persistent TUN device: what the ebpf datapath (a TUN nobody reads, with
// programs on its egress) and the userspace datapath (a TUN the agent reads) both stand on.
// Same name, MTU, address and routes as kernel ipip, so `route -n` reads the same.
import { parseAddresses, parseLinks } from '../../src/host/live-state';
import { mustRun, type Runner } from '../host/runner';
import type { DatapathHost } from './datapath';

/** The kind (`tun`, `ipip`, ...) of device `dev`, '' for a plain device, undefined when there is none. */
async function linkKind(run: Runner, dev: string): Promise<string | undefined> {
  const cur = await run('ip', ['-json', '-d', 'link', 'show', 'dev', dev]);
  if (cur.code !== 0) return undefined;
  const [link] = parseLinks(cur.stdout);
  return link ? (link.kind ?? '') : undefined;
}

/** Creates or adopts `host.tunnelDevice` as a TUN (replacing another kind), then sets MTU, up and address. */
export async function ensurePersistentTun(run: Runner, host: DatapathHost, log: (line: string) => void, owner: string): Promise<void> {
  const dev = host.tunnelDevice;
  const kind = await linkKind(run, dev);
  if (kind !== undefined && kind !== 'tun') {
    // Another datapath's device (kernel ipip, or a stray one): this datapath owns the name.
    log(`${owner}: replacing ${dev} (kind ${kind || 'unknown'}) with a TUN device`);
    await mustRun(run, 'ip', ['link', 'del', 'dev', dev]);
  }
  if (kind !== 'tun') await mustRun(run, 'ip', ['tuntap', 'add', 'dev', dev, 'mode', 'tun']);
  // The device never carries IPv6 (kernel ipip has none either): no RS/MLD noise on it.
  // sysctl spells the dot in the device name as '/'. Failure (no IPv6 here) is fine.
  await run('sysctl', ['-qw', `net.ipv6.conf.${dev.replace(/\./g, '/')}.disable_ipv6=1`]);
  await mustRun(run, 'ip', ['link', 'set', 'dev', dev, 'mtu', String(host.mtu), 'up']);
  const addrs = parseAddresses(await mustRun(run, 'ip', ['-json', '-4', 'addr', 'show', 'dev', dev]));
  const want = host.tunnelAddress.includes('/') ? host.tunnelAddress : `${host.tunnelAddress}/32`;
  if (!addrs.some((a) => a.cidr === want)) await mustRun(run, 'ip', ['addr', 'add', host.tunnelAddress, 'dev', dev]);
}

/** Deletes `dev` if it is a TUN (ours); a device of another kind belongs to another datapath and stays. */
export async function removePersistentTun(run: Runner, dev: string): Promise<void> {
  if ((await linkKind(run, dev)) === 'tun') await mustRun(run, 'ip', ['link', 'del', 'dev', dev]);
}
