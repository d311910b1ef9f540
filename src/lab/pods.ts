// Pods inside a lab host, made the way a container runtime makes them: a network namespace,
// then the CNI config it finds in the host's config directory, run through the CNI protocol
// (libcni's order: each plugin of the list in turn with the previous one's result for ADD, in
// reverse with the cached result for DEL), with the plugins Debian installs in /usr/lib/cni.
// The pure parts are here; src/lab/index.ts runs them inside the host.
import {
  BRIDGE_DEVICE,
  CNI_BIN_DIR,
  formatCidr,
  formatIpv4,
  isCniConfigFileName,
  parseIpv4,
  prefixMask,
  renderCniConflist,
  parseSubnetEnv,
  SUBNET_ENV_PATH,
} from '../model';
import type { CommandResult } from '../host/command-result';

/** Where the lab keeps what each pod was added with (inside the host, gone on reboot), for DEL. */
export const POD_CACHE_DIR = '/run/podnet-lab/pods';
export const POD_IFNAME = 'eth0';

export function validatePodName(pod: string): void {
  if (!/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/.test(pod)) throw new Error(`invalid pod name '${pod}': use 1-32 characters of [a-z0-9-]`);
}

/** A network config list (a single-plugin `.conf` is read as a list of one, as libcni does). */
export interface ConfList {
  readonly cniVersion: string;
  readonly name: string;
  readonly plugins: ReadonlyArray<Readonly<Record<string, unknown>> & { readonly type: string }>;
}

/** Parses a `.conflist` or a `.conf`; throws naming the file when it is not a usable config. */
export function parseConfList(text: string, file: string): ConfList {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${file} is not JSON: ${(err as Error).message}`);
  }
  const plugins = Array.isArray(value.plugins) ? (value.plugins as Record<string, unknown>[]) : [value];
  if (
    typeof value.name !== 'string' ||
    typeof value.cniVersion !== 'string' ||
    plugins.some((p) => typeof p.type !== 'string' || !/^[a-z0-9_-]+$/i.test(p.type as string))
  ) {
    throw new Error(`${file} is not a CNI network config (needs name, cniVersion and a type for every plugin)`);
  }
  return { cniVersion: value.cniVersion, name: value.name, plugins: plugins as unknown as ConfList['plugins'] };
}

/** The file a runtime taking the first config of the directory uses (kubelet, containerd, CRI-O). */
export function firstConfigFile(fileNames: readonly string[]): string | undefined {
  return fileNames.filter(isCniConfigFileName).sort()[0];
}

/** What the runtime offers plugins that ask for it (`capabilities`), e.g. host ports. */
export interface RuntimeConfig {
  readonly portMappings?: ReadonlyArray<{ readonly hostPort: number; readonly containerPort: number; readonly protocol: 'tcp' | 'udp' }>;
}

/**
 * The stdin of plugin `index` of `list`: the plugin's own keys, the list's name and version,
 * the previous result (ADD: the plugin before; DEL: the cached result), and the runtime config
 * for the capabilities the plugin declares.
 */
export function pluginStdin(list: ConfList, index: number, prevResult: unknown, runtime: RuntimeConfig): string {
  const plugin = list.plugins[index]!;
  const caps = (plugin.capabilities ?? {}) as Record<string, boolean>;
  const runtimeConfig = Object.fromEntries(Object.entries(runtime).filter(([k, v]) => caps[k] && v !== undefined));
  return JSON.stringify({
    ...plugin,
    name: list.name,
    cniVersion: list.cniVersion,
    ...(prevResult !== undefined ? { prevResult } : {}),
    ...(Object.keys(runtimeConfig).length > 0 ? { runtimeConfig } : {}),
  });
}

/** The environment of one plugin call (argv prefix for `env`), as the CNI spec names it. */
export function cniEnv(command: 'ADD' | 'DEL', pod: string): string[] {
  return [
    `CNI_COMMAND=${command}`,
    `CNI_CONTAINERID=${pod}`,
    `CNI_NETNS=/run/netns/${pod}`,
    `CNI_IFNAME=${POD_IFNAME}`,
    `CNI_PATH=${CNI_BIN_DIR}`,
  ];
}

/**
 * On a host where podnet is not applied (the lab's own tests of bare hosts write subnet.env
 * by hand), the conflist podnet would install, derived from subnet.env, named `cbr0` as
 * kube-flannel's is.
 */
export function conflistFromSubnetEnv(text: string): string {
  const env = parseSubnetEnv(text);
  // FLANNEL_SUBNET is the gateway with the subnet's length, e.g. 10.244.1.1/24.
  const [gateway, lengthText] = (env.subnet ?? '').split('/');
  const address = parseIpv4(gateway ?? '');
  const length = Number(lengthText);
  if (!env.network || address === undefined || !(length >= 0 && length <= 32) || env.mtu === undefined) {
    throw new Error(`${SUBNET_ENV_PATH} lacks FLANNEL_NETWORK, FLANNEL_SUBNET or FLANNEL_MTU`);
  }
  const podCidr = formatCidr({ base: (address & prefixMask(length)) >>> 0, length });
  return renderCniConflist({
    network: 'cbr0',
    podCidr,
    gateway: formatIpv4(address),
    clusterCidr: env.network,
    mtu: env.mtu,
    bridge: BRIDGE_DEVICE,
  });
}

/** What `pod del` needs: the config the pod was added with and the result ADD returned. */
export interface PodRecord {
  readonly file: string;
  readonly list: ConfList;
  readonly result: unknown;
}

/** The pod's IPv4 address from a CNI result. */
export function podIpFromResult(r: Pick<CommandResult, 'stdout'>): string {
  const result = JSON.parse(r.stdout) as { ips?: { address?: string }[] };
  const addr = result.ips?.find((i) => i.address && !i.address.includes(':'))?.address;
  if (!addr) throw new Error(`CNI result has no IPv4 address: ${r.stdout}`);
  return addr.split('/')[0]!;
}
