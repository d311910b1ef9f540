// Turns differences into the changes that repair them. Pure: the reconciler runs the
// result, and tests check the exact iproute2 lines.
import { firewalldGaps, type HostDifference } from '../../src/planner/host-diff';
import type { LiveHostState } from '../../src/host/live-state';
import {
  forwardAcceptRules,
  unmanagedConfigs,
  type UnmanagedConfig,
  IPTABLES_BACKENDS,
  IPTABLES_COMMANDS,
  nftTableName,
  ROUTE_PROTOCOL,
  savedRuleLine,
  type DesiredHostState,
  type DesiredRoute,
} from '../../src/model';

export interface FixPlan {
  /** The datapath must (re)create or repair the tunnel device. */
  readonly ensureTunnel: boolean;
  /** Tunnel device to delete first (wrong kind or wrong local address). */
  readonly recreateTunnel: boolean;
  /** `ip -batch` lines for the bridge and routes, in order. */
  readonly ipBatch: readonly string[];
  readonly writeSubnetEnv: boolean;
  readonly writeCniConfig: boolean;
  /** `nft -f -` script replacing podnet's table atomically, if it needs replacing. */
  readonly nftScript?: string;
  readonly enableIpForward: boolean;
  /** Interfaces whose net.ipv4.conf.<dev>.forwarding must be set to 1. */
  readonly interfaceForwarding: readonly string[];
  /** iptables commands (argv) inserting podnet's missing FORWARD accept rules at the top. */
  readonly firewallInserts: readonly (readonly string[])[];
  /** What firewalld must be told (runtime): bind the cluster CIDR to trusted, allow protocol 4 in the underlay's zone. */
  readonly firewalld?: { readonly bindSource: boolean; readonly protocolZone?: string };
  /** Network managers' files to (re)write. */
  readonly unmanagedConfigs: readonly UnmanagedConfig[];
}

/** `iptables-X -I FORWARD 1 ...` for each of podnet's rules `subject` (an iptables command) lacks, given the host's saved rules. */
export function firewallInserts(state: DesiredHostState, iptables: string, savedRules: readonly string[]): string[][] {
  return forwardAcceptRules(state.network, state.clusterCidr)
    .filter((args) => !savedRules.includes(savedRuleLine(args)))
    .reverse() // each goes in at position 1: the last first keeps them in flannel's order
    .map((args) => [iptables, '-w', '-I', 'FORWARD', '1', ...args]);
}

function firewalldFix(state: DesiredHostState, diffs: readonly HostDifference[], live?: LiveHostState): Pick<FixPlan, 'firewalld'> {
  if (!live || !diffs.some((d) => d.kind === 'firewall-forward' && d.subject === 'firewalld' && d.action === 'update')) return {};
  const gaps = firewalldGaps(state, live);
  if (!gaps) return {};
  return { firewalld: { bindSource: gaps.bindSource, ...(gaps.protocolZone ? { protocolZone: gaps.protocolZone } : {}) } };
}

/**
 * Differences the agent never repairs (action `report`): someone else's route and the
 * underlay (the host's own network, not podnet's). They keep the agent degraded.
 */
export function isRepairable(d: HostDifference): boolean {
  return d.action !== 'report';
}

export function routeLine(verb: 'replace', r: DesiredRoute): string {
  return `route ${verb} ${r.destination} via ${r.gateway} dev ${r.device}${r.onlink ? ' onlink' : ''} proto ${ROUTE_PROTOCOL}`;
}

/** Replacing a table atomically: create it if absent (so delete cannot fail), delete, add. */
export function nftReplaceScript(state: DesiredHostState): string {
  const table = nftTableName(state.network);
  return `table ip ${table}\ndelete table ip ${table}\n${state.nftTable}`;
}

export function planFixes(state: DesiredHostState, diffs: readonly HostDifference[], live?: LiveHostState): FixPlan {
  const kinds = new Set(diffs.map((d) => d.kind));
  const tunnelKinds = ['tunnel-missing', 'tunnel-wrong-kind', 'tunnel-wrong-local', 'tunnel-mtu', 'tunnel-address', 'tunnel-down'] as const;
  const ensureTunnel = tunnelKinds.some((k) => kinds.has(k));
  const recreateTunnel = kinds.has('tunnel-wrong-kind') || kinds.has('tunnel-wrong-local');

  const batch: string[] = [];
  const b = state.bridge;
  if (kinds.has('bridge-missing')) batch.push(`link add ${b.device} address ${b.mac} type bridge`);
  // Setting it marks the address as chosen (NET_ADDR_SET): the kernel stops following the ports'.
  else if (kinds.has('bridge-mac')) batch.push(`link set ${b.device} address ${b.mac}`);
  if (kinds.has('bridge-missing') || kinds.has('bridge-address')) batch.push(`addr replace ${b.address} dev ${b.device}`);
  if (kinds.has('bridge-missing') || kinds.has('bridge-down')) batch.push(`link set ${b.device} up`);

  // A new or recreated tunnel device loses its routes, so re-add every tunnel route then.
  const routeFix = new Set(diffs.filter((d) => d.kind === 'route-missing' || d.kind === 'route-wrong').map((d) => d.subject));
  for (const r of state.routes) {
    if (routeFix.has(r.destination) || (ensureTunnel && r.device === state.tunnel.device)) batch.push(routeLine('replace', r));
  }
  for (const d of diffs)
    if (d.kind === 'route-extra' || d.kind === 'route-stale') batch.push(`route del ${d.subject} proto ${ROUTE_PROTOCOL}`);
  // An older generation's address (subject `<cidr> dev <device>`).
  for (const d of diffs) if (d.kind === 'address-stale') batch.push(`addr del ${d.subject}`);
  // A pod's veth back on the bridge (a network manager took it off, or cni0 was recreated).
  for (const d of diffs)
    if (d.kind === 'pod-off-bridge') batch.push(`link set ${d.subject} master ${b.device}`, `link set ${d.subject} up`);

  return {
    ensureTunnel,
    recreateTunnel,
    ipBatch: batch,
    writeSubnetEnv: kinds.has('subnet-env'),
    writeCniConfig: kinds.has('cni-config'),
    ...(kinds.has('masquerade') ? { nftScript: nftReplaceScript(state) } : {}),
    enableIpForward: kinds.has('ip-forward'),
    unmanagedConfigs: unmanagedConfigs(state.network).filter((c) =>
      diffs.some((d) => d.kind === 'unmanaged-config' && d.subject === c.path),
    ),
    interfaceForwarding: diffs
      .filter((d) => d.kind === 'interface-forwarding')
      .map((d) => d.subject.slice('net.ipv4.conf.'.length, -'.forwarding'.length)),
    firewallInserts: IPTABLES_BACKENDS.flatMap((b) => {
      const cmd = IPTABLES_COMMANDS[b].iptables;
      return diffs.some((d) => d.kind === 'firewall-forward' && d.subject === cmd)
        ? firewallInserts(state, cmd, live?.iptablesForward?.[b]?.rules ?? [])
        : [];
    }),
    ...firewalldFix(state, diffs, live),
  };
}
