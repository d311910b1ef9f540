// The agent's systemd unit. Its text is part of the desired state (drift compares it), so
// it is rendered here from the model, not templated on the host.
import type { DatapathChoice } from './spec';
import {
  AGENT_BUNDLE_PATH,
  BPFFS_MOUNT,
  NETWORK_MANAGER_CONF_DIR,
  NETWORKD_DIR,
  RUNTIME_PATH,
  agentConfigPath,
  cniDirsCreatedPath,
  DEFAULT_CNI_CONF_DIR,
} from './host-layout';

/**
 * Capabilities per datapath. kernel and userspace need only networking; ebpf also loads
 * programs: CAP_BPF and CAP_PERFMON on a normal host, CAP_SYS_ADMIN where bpf() is gated by
 * it (inside systemd-nspawn, and on kernels before 5.8). `auto` may end up on any of them.
 */
export function capabilitiesFor(datapath: DatapathChoice): string[] {
  const net = ['CAP_NET_ADMIN', 'CAP_NET_RAW'];
  const bpf = ['CAP_BPF', 'CAP_PERFMON', 'CAP_SYS_ADMIN'];
  return datapath === 'kernel' || datapath === 'userspace' ? net : [...net, ...bpf];
}

/**
 * Runs before the agent, outside its sandbox (`+`): ProtectSystem=strict makes /etc read-only
 * to the agent, and ReadWritePaths needs a path that exists. Creates the CNI config directory
 * and any missing parent, noting each one it made (outermost first) so destroy removes exactly
 * those. `cniConfDir` is validated plain (no quotes, `%` or `$`); `$$` is systemd's `$`.
 */
export function cniDirsCommand(network: string, cniConfDir: string): string {
  const parts = cniConfDir.split('/').filter(Boolean);
  const chain = parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}`);
  const memo = cniDirsCreatedPath(network);
  return `/bin/sh -c 'for d in ${chain.join(' ')}; do [ -d $$d ] || { mkdir $$d && echo $$d >> ${memo}; } || exit 1; done'`;
}

/**
 * What the agent may write for the CNI config: the directory's parent (so it can recreate a
 * directory someone removed), unless that parent is a top-level one like /etc.
 */
export function cniWritablePath(cniConfDir: string): string {
  const parent = cniConfDir.slice(0, cniConfDir.lastIndexOf('/'));
  return parent.split('/').filter(Boolean).length >= 2 ? parent : cniConfDir;
}

/**
 * Runs before the agent, as root in the host's mount namespace: mounts the host's bpffs where a
 * host booted without one. Neither the agent nor a plain `+` command may mount it: ProtectSystem=
 * gives the service a mount namespace of its own (and systemd 252 runs `+` commands in one too,
 * a slave of the host's), so the bpffs, and the pins in it, would die with the process; the next
 * start would load new maps and replace the programs, and a shell on the host would see no pins
 * (review finding 21). Hence nsenter into PID 1's. A bpffs is looked for by type: nspawn leaves a
 * read-only tmpfs on /sys/fs/bpf. Prefixed `-` in the unit: if it fails, the agent refuses, saying so.
 */
export const BPFFS_MOUNT_COMMAND = `/usr/bin/nsenter --mount=/proc/1/ns/mnt /bin/sh -c 'grep -qs "^[^ ]* ${BPFFS_MOUNT} bpf " /proc/self/mounts || mount -t bpf bpf ${BPFFS_MOUNT}'`;

export function renderAgentUnit(network: string, datapath: DatapathChoice, cniConfDir: string = DEFAULT_CNI_CONF_DIR): string {
  return [
    '[Unit]',
    `Description=podnet agent for network ${network} (flannel-style IP-in-IP)`,
    'Wants=network-online.target',
    'After=network-online.target',
    // Applies restart the agent on every change; systemd's default start limit (5 in 10 s)
    // would refuse a quick series of them. RestartSec paces crash loops instead.
    'StartLimitIntervalSec=0',
    '',
    '[Service]',
    'Type=simple',
    `ExecStartPre=+${cniDirsCommand(network, cniConfDir)}`,
    ...(capabilitiesFor(datapath).includes('CAP_BPF') ? [`ExecStartPre=-+${BPFFS_MOUNT_COMMAND}`] : []),
    `ExecStart=${RUNTIME_PATH} ${AGENT_BUNDLE_PATH} run --config ${agentConfigPath(network)}`,
    'Restart=always',
    'RestartSec=1',
    // SIGTERM stops the agent but leaves the network in place, so a restart does not flap it.
    'KillMode=mixed',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ProtectHome=yes',
    'PrivateTmp=yes',
    'RuntimeDirectory=flannel podnet',
    'RuntimeDirectoryPreserve=yes',
    `ReadWritePaths=-${BPFFS_MOUNT}`,
    // iptables-legacy takes /run/xtables.lock (creating it) before it changes a table, as it
    // must when podnet adds its FORWARD rules beside another firewall: the sandbox keeps /run
    // read-only, so make the file first, outside the sandbox, and let the agent write it.
    'ExecStartPre=+/bin/touch /run/xtables.lock',
    'ReadWritePaths=-/run/xtables.lock',
    // The files telling network managers to leave podnet's links alone (unmanaged-links.ts).
    `ReadWritePaths=-${NETWORKD_DIR} -${NETWORK_MANAGER_CONF_DIR}`,
    // `-`: the path may not exist yet when systemd sets up ExecStartPre's namespace (which it
    // does even for `+` commands); ExecStartPre makes it before ExecStart's is set up.
    `ReadWritePaths=-${cniWritablePath(cniConfDir)}`,
    `CapabilityBoundingSet=${capabilitiesFor(datapath).join(' ')}`,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}
