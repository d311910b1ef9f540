// flannel.ipip as a persistent TUN device: what the ebpf datapath (a TUN nobody reads, with
// programs on its egress) and the userspace datapath (a TUN the agent reads) both stand on.
// Same name, MTU, address and routes as kernel ipip, so `route -n` reads the same.
import { mustRun, type Runner } from '../host/runner';
import type { DatapathHost } from './datapath';

export async function ensurePersistentTun(run: Runner, host: DatapathHost, log: (line: string) => void, owner: string): Promise<void> {
  const dev = host.tunnelDevice;
  const cur = await run('ip', ['-json', '-d', 'link', 'show', 'dev', dev]);
  let kind: string | undefined;
  if (cur.code === 0) {
    const l = (JSON.parse(cur.stdout || '[]') as { linkinfo?: { info_kind?: string } }[])[0];
    kind = l?.linkinfo?.info_kind;
    if (kind !== 'tun') {
      // Another datapath's device (kernel ipip, or a stray one): this datapath owns the name.
      log(`${owner}: replacing ${dev} (kind ${kind ?? 'unknown'}) with a TUN device`);
      await mustRun(run, 'ip', ['link', 'del', 'dev', dev]);
    }
  }
  if (kind !== 'tun') await mustRun(run, 'ip', ['tuntap', 'add', 'dev', dev, 'mode', 'tun']);
  // The device never carries IPv6 (kernel ipip has none either): no RS/MLD noise on it.
  // sysctl spells the dot in the device name as '/'. Failure (no IPv6 here) is fine.
  await run('sysctl', ['-qw', `net.ipv6.conf.${dev.replace(/\./g, '/')}.disable_ipv6=1`]);
  await mustRun(run, 'ip', ['link', 'set', 'dev', dev, 'mtu', String(host.mtu), 'up']);
  const addrs = JSON.parse((await mustRun(run, 'ip', ['-json', '-4', 'addr', 'show', 'dev', dev])) || '[]') as { addr_info?: { local?: string; prefixlen?: number }[] }[];
  const [want, len] = host.tunnelAddress.split('/');
  const have = (addrs[0]?.addr_info ?? []).some((a) => a.local === want && a.prefixlen === Number(len ?? 32));
  if (!have) await mustRun(run, 'ip', ['addr', 'add', host.tunnelAddress, 'dev', dev]);
}
