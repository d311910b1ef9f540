// Where podnet puts things on a host. One place, so the engine (which writes them), the
// agent (which reads them) and the drift check (which compares them) agree. Nothing else in
// the code base spells out /etc/podnet, /run/podnet or /run/flannel (a unit test checks).

export const TUNNEL_DEVICE = 'flannel.ipip';
export const BRIDGE_DEVICE = 'cni0';
/** rt_protos number marking routes podnet owns; only routes with it are ever removed. */
export const ROUTE_PROTOCOL = 152;
/** flanneld's lease file, read by CNI plugins (`FLANNEL_NETWORK`, `FLANNEL_SUBNET`, ...). */
export const FLANNEL_RUN_DIR = '/run/flannel';
export const SUBNET_ENV_PATH = `${FLANNEL_RUN_DIR}/subnet.env`;
export const INSTALL_DIR = '/usr/local/lib/podnet';
/** Where the agent bundle (agent-manifest.ts's AGENT_BUNDLE_NAME) is installed. */
export const AGENT_BUNDLE_PATH = `${INSTALL_DIR}/podnet-agent.js`;
/**
 * `podnet-agent teardown`'s exit status when it cannot read its config (a config an older
 * podnet wrote that this agent's parser rejects): nothing was torn down. Apply removing another
 * network's leftovers then goes by name alone.
 */
export const TEARDOWN_CONFIG_UNREADABLE = 4;
/** A symlink to the Node.js runtime podnet shipped (cached by hash in runtimes/). */
export const RUNTIME_PATH = `${INSTALL_DIR}/node`;
export const RUNTIME_CACHE_DIR = `${INSTALL_DIR}/runtimes`;
export const CONFIG_DIR = '/etc/podnet';
export const RUN_DIR = '/run/podnet';
/** Where systemd mounts the host's bpffs at boot; the agent's unit mounts it if a host booted without. */
export const BPFFS_MOUNT = '/sys/fs/bpf';
/** Where the ebpf datapath pins its programs and maps (a bpffs; `podnet-bpf --pin-dir`). */
export const BPF_PIN_ROOT = `${BPFFS_MOUNT}/podnet`;
/** Where container runtimes (kubelet, containerd, CRI-O, podman) read CNI network configs; `cniConfDir` overrides it. */
export const DEFAULT_CNI_CONF_DIR = '/etc/cni/net.d';
/**
 * Where Debian's `containernetworking-plugins` installs bridge, host-local, portmap, ...
 * podman searches it; runtimes that look in /opt/cni/bin are pointed here (see README).
 */
export const CNI_BIN_DIR = '/usr/lib/cni';

/**
 * Every file podnet writes atomically goes first to a temp name beside it that starts with the
 * target's name and this marker, then is renamed over it; a crash can leave one behind, so
 * teardown removes `<path>.podnet-tmp*` ({@link tempFileGlob}) with the file.
 */
export const TEMP_MARKER = '.podnet-tmp';

/** The temp name `path` is written to before the rename (`unique` tells concurrent writers apart). */
export function tempPathFor(path: string, unique?: string): string {
  return unique === undefined ? `${path}${TEMP_MARKER}` : `${path}${TEMP_MARKER}.${unique}`;
}

/** A shell glob matching every temp file {@link tempPathFor} can make for `path` (unquoted use). */
export function tempFileGlob(path: string): string {
  return `${path}${TEMP_MARKER}*`;
}

export function agentConfigPath(network: string): string {
  return `${CONFIG_DIR}/${network}.json`;
}

export function unitName(network: string): string {
  return `podnet-${network}.service`;
}

export function unitPath(network: string): string {
  return `/etc/systemd/system/${unitName(network)}`;
}

/**
 * The per-host lock of `network` (engine/host-lock.ts): who applies or destroys here now. In
 * /run, so a reboot frees it; taken and removed under flock on RUN_DIR.
 */
export function lockPath(network: string): string {
  return `${RUN_DIR}/${network}.lock`;
}

export function statusPath(network: string): string {
  return `${RUN_DIR}/${network}.status.json`;
}

/** The revision `cdktf deploy` applied (`podnet apply --revision`), for destroy's guard. */
export function revisionPath(network: string): string {
  return `${CONFIG_DIR}/${network}.revision`;
}

/** net.ipv4.ip_forward: routing between pods needs it on. */
export const IP_FORWARD_PATH = '/proc/sys/net/ipv4/ip_forward';

/** net.ipv4.conf.<device>.forwarding (a hardening file can turn it off per interface). */
export function interfaceForwardingPath(device: string): string {
  return `/proc/sys/net/ipv4/conf/${device}/forwarding`;
}

/**
 * Where an older agent noted the value of net.ipv4.ip_forward it found before turning
 * forwarding on; the ownership record holds it now. Teardown still honours the note.
 */
export function ipForwardMemoPath(network: string): string {
  return `${RUN_DIR}/${network}.ip_forward-before`;
}

/**
 * The agent's ownership record (agent/host/ownership.ts): what it created on this host and
 * what it found there, so teardown removes or restores exactly that. In /run, like the kernel
 * state it describes: both are gone after a reboot, and the agent records afresh.
 */
export function ownershipRecordPath(network: string): string {
  return `${RUN_DIR}/${network}.owned.json`;
}

/**
 * Made by `podnet destroy` just before it stops the agent: an agent started before the file was
 * made tears the host down on its way out (saving destroy a second Node boot), then removes it.
 */
export function teardownRequestPath(network: string): string {
  return `${RUN_DIR}/${network}.teardown`;
}

/** nftables table holding masquerade and forward rules; deleting it removes all of them. */
export function nftTableName(network: string): string {
  return `podnet_${network.replace(/-/g, '_')}`;
}

/** nftables table leaving pods' packets to remote pods untracked (firewalld beside the ebpf datapath; forward-rules.ts). */
export function conntrackBypassTableName(network: string): string {
  return `${nftTableName(network)}_notrack`;
}

/**
 * The kernel datapath's own table (agent/datapaths/kernel/peer-filter.ts uses it as PEER_FILTER_TABLE, one
 * per host whatever the network): a `podnet_*` table that is no network's, and never stale.
 */
export const KERNEL_PEER_FILTER_TABLE = 'podnet_ipip';

/**
 * Why a network may not have this name, or undefined: its nftables table would be one podnet
 * keeps for something else (`ipip` -> the kernel peer filter's `podnet_ipip`; `x-notrack` ->
 * network `x`'s conntrack bypass table), so two owners would delete each other's rules.
 */
export function reservedNetworkNameProblem(network: string): string | undefined {
  const table = nftTableName(network);
  if (table === KERNEL_PEER_FILTER_TABLE)
    return `is reserved: its nftables table would be ${KERNEL_PEER_FILTER_TABLE}, the kernel datapath's peer filter`;
  if (table.endsWith('_notrack'))
    return `may not end in '-notrack': its nftables table ${table} would be network '${network.slice(0, -'-notrack'.length)}''s conntrack bypass table`;
  return undefined;
}

/** systemd-networkd's and NetworkManager's configuration directories (podnet writes there only if they exist). */
export const NETWORKD_DIR = '/etc/systemd/network';
export const NETWORK_MANAGER_CONF_DIR = '/etc/NetworkManager/conf.d';

/** Tells systemd-networkd to leave podnet's links alone; `10-` sorts before catch-alls, and the first match wins. */
export function networkdConfigPath(network: string): string {
  return `${NETWORKD_DIR}/10-podnet-${network}.network`;
}

/** Tells NetworkManager to leave podnet's links alone. */
export function networkManagerConfigPath(network: string): string {
  return `${NETWORK_MANAGER_CONF_DIR}/podnet-${network}.conf`;
}

/**
 * podnet's conflist in the CNI config directory. `10-` sorts it before the usual defaults
 * (`87-podman-bridge.conflist`, `99-loopback.conf`), as flannel's `10-flannel.conflist` does.
 */
export function cniConfFileName(network: string): string {
  return `10-podnet-${network}.conflist`;
}

/** Where podnet's conflist lives: `dir` (the network's cniConfDir), its `file` name, the full `path`. */
export function cniConfLocation(network: string, dir: string): { readonly dir: string; readonly file: string; readonly path: string } {
  const file = cniConfFileName(network);
  return { dir, file, path: `${dir}/${file}` };
}

/**
 * The CNI config directories (and parents) the unit had to create, one per line, outermost
 * first, so destroy removes exactly those (when empty) and a host's own directory stays.
 */
export function cniDirsCreatedPath(network: string): string {
  return `${RUN_DIR}/${network}.cni-dirs-created`;
}
