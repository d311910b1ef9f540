// Network managers must leave podnet's links alone: a systemd-networkd `.network` file that
// matches every link (cloud images ship such catch-alls) takes the pods' veths off cni0 on every
// networkd start, and NetworkManager likewise claims what it is not told to ignore. podnet
// writes one file for each manager present, marking the tunnel, the bridge and the pods' veths
// unmanaged, as Kubernetes network plugins' install guides tell users to do by hand.
import {
  BRIDGE_DEVICE,
  NETWORK_MANAGER_CONF_DIR,
  NETWORKD_DIR,
  networkdConfigPath,
  networkManagerConfigPath,
  TUNNEL_DEVICE,
} from './host-layout';

/** Host-side veth names the CNI bridge plugin gives pods: `veth` and 8 hex digits (Docker's have 7). */
export const CNI_VETH_NAME = /^veth[0-9a-f]{8}$/;

export interface UnmanagedConfig {
  readonly manager: 'systemd-networkd' | 'NetworkManager';
  /** Written only where this directory exists (the manager is installed). */
  readonly dir: string;
  readonly path: string;
  readonly content: string;
}

export function unmanagedConfigs(network: string): readonly UnmanagedConfig[] {
  const head = `# podnet network ${network}: leave the tunnel, the pod bridge and the pods' veths alone.\n# Written by podnet's agent, removed by podnet destroy.\n`;
  return [
    {
      manager: 'systemd-networkd',
      dir: NETWORKD_DIR,
      path: networkdConfigPath(network),
      content: `${head}[Match]\nName=${TUNNEL_DEVICE} ${BRIDGE_DEVICE} veth*\n\n[Link]\nUnmanaged=yes\n`,
    },
    {
      manager: 'NetworkManager',
      dir: NETWORK_MANAGER_CONF_DIR,
      path: networkManagerConfigPath(network),
      content: `${head}[keyfile]\nunmanaged-devices=interface-name:${TUNNEL_DEVICE};interface-name:${BRIDGE_DEVICE};interface-name:veth*\n`,
    },
  ];
}

/**
 * How each manager re-reads its configuration after podnet's file came or went (the agent runs
 * it; destroy's script too, where no teardown could run). A manager not running makes it fail,
 * which is fine: it reads the files when it starts.
 */
export const MANAGER_RELOAD: Readonly<Record<UnmanagedConfig['manager'], readonly [string, ...string[]]>> = {
  'systemd-networkd': ['networkctl', 'reload'],
  NetworkManager: ['nmcli', 'general', 'reload', 'conf'],
};
