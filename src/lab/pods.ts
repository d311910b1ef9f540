// Pods inside a lab host, made the way a kubelet with flannel's CNI plugin makes them: a network
// namespace, then the standard CNI `bridge` plugin (with `host-local` IPAM) called with the
// configuration flannel's plugin derives from /run/flannel/subnet.env.
import type { CommandResult } from '../host/command-result';

export const SUBNET_ENV = '/run/flannel/subnet.env';
export const CNI_BIN_DIR = '/usr/lib/cni';
/** Where the lab keeps the CNI config each pod was added with (inside the host, gone on reboot). */
export const POD_CONF_DIR = '/run/podnet-lab/pods';

export interface SubnetEnv { network: string; subnet: string; mtu: number; ipmasq: boolean }

export function validatePodName(pod: string): void {
  if (!/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/.test(pod)) throw new Error(`invalid pod name '${pod}': use 1-32 characters of [a-z0-9-]`);
}

export function parseSubnetEnv(text: string): SubnetEnv {
  const v: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z_]+)=(.*)$/.exec(line);
    if (m?.[1]) v[m[1]] = (m[2] ?? '').trim().replace(/^"(.*)"$/, '$1');
  }
  const need = (k: string): string => {
    const x = v[k];
    if (!x) throw new Error(`${SUBNET_ENV} has no ${k}`);
    return x;
  };
  return { network: need('FLANNEL_NETWORK'), subnet: networkOf(need('FLANNEL_SUBNET')), mtu: Number(need('FLANNEL_MTU')), ipmasq: v.FLANNEL_IPMASQ === 'true' };
}

/**
 * 10.244.1.1/24 -> 10.244.1.0/24. Deliberately not src/model/ipv4.ts: the lab is an independent
 * oracle for what podnet puts on hosts, so a bug in the model's arithmetic cannot hide itself here.
 */
export function networkOf(cidr: string): string {
  const [ip, len] = cidr.split('/');
  const bits = Number(len);
  const parts = (ip ?? '').split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !(p >= 0 && p <= 255)) || !(bits >= 0 && bits <= 32)) throw new Error(`bad CIDR '${cidr}'`);
  const n = ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  const net = (n & mask) >>> 0;
  return `${net >>> 24}.${(net >>> 16) & 255}.${(net >>> 8) & 255}.${net & 255}/${bits}`;
}

/** The bridge plugin config flannel's CNI plugin hands on (kube-flannel's delegate settings). */
export function flannelBridgeConf(env: SubnetEnv): object {
  return {
    cniVersion: '0.3.1',
    name: 'cbr0',
    type: 'bridge',
    bridge: 'cni0',
    isGateway: true,
    isDefaultGateway: true,
    hairpinMode: true,
    ipMasq: !env.ipmasq,
    mtu: env.mtu,
    ipam: { type: 'host-local', ranges: [[{ subnet: env.subnet }]], routes: [{ dst: env.network }] },
  };
}

/** Shell run inside the host for ADD: reads the config on stdin. */
export function addScript(pod: string): string {
  return [
    'set -e',
    `if [ -e /run/netns/${pod} ]; then echo "pod ${pod} already exists" >&2; exit 17; fi`,
    `mkdir -p ${POD_CONF_DIR}`,
    `cat > ${POD_CONF_DIR}/${pod}.json`,
    `ip netns add ${pod}`,
    `ip -n ${pod} link set lo up`,
    `if ! out=$(${cniEnv('ADD', pod)} ${CNI_BIN_DIR}/bridge < ${POD_CONF_DIR}/${pod}.json); then`,
    `  echo "$out" >&2; ip netns del ${pod}; rm -f ${POD_CONF_DIR}/${pod}.json; exit 1`,
    'fi',
    'echo "$out"',
  ].join('\n');
}

export function delScript(pod: string): string {
  return [
    `if [ -f ${POD_CONF_DIR}/${pod}.json ]; then`,
    `  ${cniEnv('DEL', pod)} ${CNI_BIN_DIR}/bridge < ${POD_CONF_DIR}/${pod}.json >&2 || echo "CNI DEL failed; removing the namespace anyway" >&2`,
    `  rm -f ${POD_CONF_DIR}/${pod}.json`,
    'fi',
    `if [ -e /run/netns/${pod} ]; then ip netns del ${pod}; fi`,
  ].join('\n');
}

function cniEnv(cmd: 'ADD' | 'DEL', pod: string): string {
  return `CNI_COMMAND=${cmd} CNI_CONTAINERID=${pod} CNI_NETNS=/run/netns/${pod} CNI_IFNAME=eth0 CNI_PATH=${CNI_BIN_DIR}`;
}

/** The pod's IPv4 address from the plugin's result. */
export function podIpFromResult(r: CommandResult): string {
  const result = JSON.parse(r.stdout) as { ips?: { address?: string }[] };
  const addr = result.ips?.find((i) => i.address && !i.address.includes(':'))?.address;
  if (!addr) throw new Error(`CNI result has no IPv4 address: ${r.stdout}`);
  return addr.split('/')[0]!;
}
