// Where podnet puts things on a host. One place, so the engine (which writes them), the
// agent (which reads them) and the drift check (which compares them) agree.

export const TUNNEL_DEVICE = 'flannel.ipip';
export const BRIDGE_DEVICE = 'cni0';
/** rt_protos number marking routes podnet owns; only routes with it are ever removed. */
export const ROUTE_PROTOCOL = 152;
export const SUBNET_ENV_PATH = '/run/flannel/subnet.env';
export const INSTALL_DIR = '/usr/local/lib/podnet';
export const AGENT_BUNDLE_PATH = `${INSTALL_DIR}/podnet-agent.js`;
/** A symlink to the Node.js runtime podnet shipped (cached by hash in runtimes/). */
export const RUNTIME_PATH = `${INSTALL_DIR}/node`;
export const RUNTIME_CACHE_DIR = `${INSTALL_DIR}/runtimes`;
export const CONFIG_DIR = '/etc/podnet';
export const RUN_DIR = '/run/podnet';
export const BPF_PIN_ROOT = '/sys/fs/bpf/podnet';

export function agentConfigPath(network: string): string {
  return `${CONFIG_DIR}/${network}.json`;
}

export function unitName(network: string): string {
  return `podnet-${network}.service`;
}

export function unitPath(network: string): string {
  return `/etc/systemd/system/${unitName(network)}`;
}

export function statusPath(network: string): string {
  return `${RUN_DIR}/${network}.status.json`;
}

/**
 * Made by `podnet destroy` just before it stops the agent: an agent started before the file was
 * made tears the host down on its way out (saving destroy a second Node boot), then removes it.
 */
export function teardownRequestPath(network: string): string {
  return `${RUN_DIR}/${network}.teardown`;
}

export function bpfPinDir(network: string): string {
  return `${BPF_PIN_ROOT}/${network}`;
}

/** nftables table holding masquerade and forward rules; deleting it removes all of them. */
export function nftTableName(network: string): string {
  return `podnet_${network.replace(/-/g, '_')}`;
}
