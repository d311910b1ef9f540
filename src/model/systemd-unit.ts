// The agent's systemd unit. Its text is part of the desired state (drift compares it), so
// it is rendered here from the model, not templated on the host.
import type { DatapathChoice } from './spec';
import { AGENT_BUNDLE_PATH, NETWORK_MANAGER_CONF_DIR, NETWORKD_DIR, RUNTIME_PATH, agentConfigPath } from './host-layout';

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

export function renderAgentUnit(network: string, datapath: DatapathChoice): string {
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
    'ReadWritePaths=-/sys/fs/bpf',
    // iptables-legacy takes /run/xtables.lock (creating it) before it changes a table, as it
    // must when podnet adds its FORWARD rules beside another firewall: the sandbox keeps /run
    // read-only, so make the file first, outside the sandbox, and let the agent write it.
    'ExecStartPre=+/bin/touch /run/xtables.lock',
    'ReadWritePaths=-/run/xtables.lock',
    // The files telling network managers to leave podnet's links alone (unmanaged-links.ts).
    `ReadWritePaths=-${NETWORKD_DIR} -${NETWORK_MANAGER_CONF_DIR}`,
    `CapabilityBoundingSet=${capabilitiesFor(datapath).join(' ')}`,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}
