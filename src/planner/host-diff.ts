// Desired vs live for one host: a list of differences, each with the fix the agent makes.
// Pure and shared: the agent's reconcile applies the fixes; `podnet drift` reports them.
import {
  cidrContains,
  cniConfigsShadowing,
  CNI_VETH_NAME,
  describeCniConflist,
  FIREWALLD_ZONE,
  unmanagedConfigs,
  forwardAcceptRules,
  forwardRuleComment,
  IPTABLES_BACKENDS,
  IPTABLES_COMMANDS,
  parseCidr,
  ROUTE_PROTOCOL,
  savedRuleLine,
  type DesiredHostState,
  type DesiredRoute,
} from '../model';
import type { LiveHostState, LiveRoute } from '../host/live-state';
import { staleOwnState } from './stale-state';

export type DifferenceKind =
  | 'tunnel-missing'
  | 'tunnel-wrong-kind'
  | 'tunnel-wrong-local'
  | 'tunnel-mtu'
  | 'tunnel-address'
  | 'tunnel-down'
  | 'bridge-missing'
  | 'bridge-address'
  | 'bridge-down'
  | 'bridge-mac'
  /** The underlay interface is missing, down, or lacks the node's address: nothing can flow, nothing podnet may fix. */
  | 'underlay-missing'
  | 'underlay-down'
  | 'underlay-address'
  | 'route-missing'
  | 'route-wrong'
  | 'route-foreign'
  | 'route-extra'
  /** podnet's route outside the cluster CIDR: an older generation's (stale-state.ts). */
  | 'route-stale'
  /** podnet's address on the tunnel or bridge beside the wanted one: an older generation's. */
  | 'address-stale'
  | 'subnet-env'
  | 'masquerade'
  | 'ip-forward'
  | 'interface-forwarding'
  | 'firewall-forward'
  | 'unmanaged-config'
  | 'pod-off-bridge'
  | 'cni-config'
  | 'cni-config-shadowed';

/**
 * What resolving a difference does, said explicitly so views never guess from a kind's name
 * (terraform's plans.Action, minus replace): `create` adds what is missing, `update` changes
 * what exists, `delete` removes podnet's own leftovers, `report` is shown and never touched
 * (someone else's route, the underlay).
 */
export type ChangeAction = 'create' | 'update' | 'delete' | 'report';

export interface HostDifference {
  readonly kind: DifferenceKind;
  readonly action: ChangeAction;
  /** What it is about: a device, a route's destination, a file path. */
  readonly subject: string;
  readonly expected?: string;
  readonly actual?: string;
}

/** Device kinds each datapath gives flannel.ipip; `auto` accepts any of them. */
export function acceptableTunnelKinds(datapath: DesiredHostState['datapath']): string[] {
  switch (datapath) {
    case 'kernel':
      return ['ipip'];
    case 'ebpf':
    case 'userspace':
      return ['tun'];
    case 'auto':
      return ['ipip', 'tun'];
  }
}

export function describeRoute(r: { destination: string; gateway?: string; device?: string; onlink: boolean }): string {
  return `${r.destination}${r.gateway ? ` via ${r.gateway}` : ''}${r.device ? ` dev ${r.device}` : ''}${r.onlink ? ' onlink' : ''}`;
}

/** A device's IPv4 addresses as a difference's `actual`: `a/n, b/m`, or `none`. */
function addressesOn(live: LiveHostState, device: string): string {
  return (
    live.addresses
      .filter((a) => a.device === device)
      .map((a) => a.cidr)
      .join(', ') || 'none'
  );
}

function routeMatches(desired: DesiredRoute, live: LiveRoute): boolean {
  return live.gateway === desired.gateway && live.device === desired.device && live.onlink === desired.onlink;
}

/** Is this live route one podnet owns (its proto number, inside the cluster CIDR)? */
export function isPodnetRoute(route: LiveRoute, clusterCidr: string): boolean {
  const cluster = parseCidr(clusterCidr);
  const dst = parseCidr(route.destination);
  return route.protocol === String(ROUTE_PROTOCOL) && cluster.ok && dst.ok && cidrContains(cluster.cidr, dst.cidr);
}

export function diffHost(desired: DesiredHostState, live: LiveHostState): HostDifference[] {
  const diffs: HostDifference[] = [];
  const t = desired.tunnel;
  const tunnel = live.links.find((l) => l.name === t.device);
  if (!tunnel) {
    diffs.push({
      kind: 'tunnel-missing',
      action: 'create',
      subject: t.device,
      expected: `${desired.datapath} tunnel, local ${t.local}, mtu ${t.mtu}`,
    });
  } else {
    const kinds = acceptableTunnelKinds(desired.datapath);
    if (!kinds.includes(tunnel.kind ?? ''))
      diffs.push({
        kind: 'tunnel-wrong-kind',
        action: 'update',
        subject: t.device,
        expected: kinds.join(' or '),
        actual: tunnel.kind ?? 'plain',
      });
    if (tunnel.kind === 'ipip' && tunnel.ipipLocal !== t.local)
      diffs.push({ kind: 'tunnel-wrong-local', action: 'update', subject: t.device, expected: t.local, actual: tunnel.ipipLocal ?? 'any' });
    if (tunnel.mtu !== t.mtu)
      diffs.push({ kind: 'tunnel-mtu', action: 'update', subject: t.device, expected: String(t.mtu), actual: String(tunnel.mtu) });
    if (!tunnel.up) diffs.push({ kind: 'tunnel-down', action: 'update', subject: t.device, expected: 'up', actual: 'down' });
    if (!live.addresses.some((a) => a.device === t.device && a.cidr === t.address)) {
      diffs.push({ kind: 'tunnel-address', action: 'update', subject: t.device, expected: t.address, actual: addressesOn(live, t.device) });
    }
  }

  const u = desired.underlay;
  const underlay = live.links.find((l) => l.name === u.device);
  if (!underlay) diffs.push({ kind: 'underlay-missing', action: 'report', subject: u.device, expected: `interface with ${u.address}` });
  else {
    if (!underlay.up) diffs.push({ kind: 'underlay-down', action: 'report', subject: u.device, expected: 'up', actual: 'down' });
    if (!live.addresses.some((a) => a.device === u.device && a.cidr.split('/')[0] === u.address)) {
      diffs.push({
        kind: 'underlay-address',
        action: 'report',
        subject: u.device,
        expected: u.address,
        actual: addressesOn(live, u.device),
      });
    }
  }

  const b = desired.bridge;
  const bridge = live.links.find((l) => l.name === b.device);
  if (!bridge) {
    diffs.push({ kind: 'bridge-missing', action: 'create', subject: b.device, expected: `bridge ${b.address}` });
  } else {
    if (!live.addresses.some((a) => a.device === b.device && a.cidr === b.address)) {
      diffs.push({
        kind: 'bridge-address',
        action: 'update',
        subject: b.device,
        expected: b.address,
        actual: addressesOn(live, b.device),
      });
    }
    if (!bridge.up) diffs.push({ kind: 'bridge-down', action: 'update', subject: b.device, expected: 'up', actual: 'down' });
    if (bridge.mac !== b.mac)
      diffs.push({ kind: 'bridge-mac', action: 'update', subject: b.device, expected: b.mac, actual: bridge.mac ?? 'none' });
  }

  for (const route of desired.routes) {
    const live_ = live.routes.find((r) => r.destination === route.destination);
    if (!live_) diffs.push({ kind: 'route-missing', action: 'create', subject: route.destination, expected: describeRoute(route) });
    // A wrong route of podnet's own is replaced; someone else's route to a peer's subnet is
    // reported and left alone: podnet never removes a route it did not add.
    else if (!routeMatches(route, live_)) {
      const ours = live_.protocol === String(ROUTE_PROTOCOL);
      diffs.push({
        kind: ours ? 'route-wrong' : 'route-foreign',
        action: ours ? 'update' : 'report',
        subject: route.destination,
        expected: describeRoute(route),
        actual: `${describeRoute(live_)} proto ${live_.protocol}`,
      });
    }
  }
  const wanted = new Set(desired.routes.map((r) => r.destination));
  for (const route of live.routes) {
    if (!wanted.has(route.destination) && isPodnetRoute(route, desired.clusterCidr)) {
      diffs.push({ kind: 'route-extra', action: 'delete', subject: route.destination, actual: describeRoute(route) });
    }
  }
  diffs.push(...staleOwnState(desired, live, describeRoute));

  if (live.subnetEnv !== desired.subnetEnv.content) {
    diffs.push({
      kind: 'subnet-env',
      action: 'update',
      subject: desired.subnetEnv.path,
      expected: desired.subnetEnv.content.trim().replace(/\n/g, ' '),
      ...(live.subnetEnv !== undefined ? { actual: live.subnetEnv.trim().replace(/\n/g, ' ') } : { actual: 'missing' }),
    });
  }
  if (live.nftTable === undefined || normalizeNft(live.nftTable) !== normalizeNft(desired.nftTable)) {
    diffs.push({
      kind: 'masquerade',
      action: 'update',
      subject: 'nftables',
      expected: 'podnet table as declared',
      actual: live.nftTable === undefined ? 'missing' : 'different rules',
    });
  }
  if (!live.ipForward) diffs.push({ kind: 'ip-forward', action: 'update', subject: 'net.ipv4.ip_forward', expected: '1', actual: '0' });
  // Routing into and out of the pods needs forwarding on each interface they cross, too
  // (a hardening file can turn it off per interface with ip_forward left on).
  for (const dev of [desired.underlay.device, desired.bridge.device, desired.tunnel.device]) {
    if (live.forwarding?.[dev] === false)
      diffs.push({
        kind: 'interface-forwarding',
        action: 'update',
        subject: `net.ipv4.conf.${dev}.forwarding`,
        expected: '1',
        actual: '0',
      });
  }
  diffs.push(...firewallDiffs(desired, live));
  diffs.push(...netManagerDiffs(desired, live));
  diffs.push(...diffCniConfig(desired.cni, live));
  return diffs;
}

/**
 * podnet's conflist, missing or different (a changed one applies to pods made after it: the
 * rest keep their MTU and routes until re-created), and foreign configs a runtime taking the
 * directory's first file would use instead (reported, never touched).
 */
export function diffCniConfig(cni: DesiredHostState['cni'], live: Pick<LiveHostState, 'cniConfig' | 'cniConfFiles'>): HostDifference[] {
  const diffs: HostDifference[] = [];
  if (live.cniConfig !== cni.content) {
    diffs.push({
      kind: 'cni-config',
      action: live.cniConfig === undefined ? 'create' : 'update',
      subject: cni.path,
      expected: describeCniConflist(cni.content),
      actual:
        live.cniConfig === undefined
          ? live.cniConfFiles === undefined
            ? `missing (no ${cni.dir})`
            : 'missing'
          : `${describeCniConflist(live.cniConfig)}; pods made with it keep its settings until re-created`,
    });
  }
  for (const name of cniConfigsShadowing(live.cniConfFiles ?? [], cni.file)) {
    diffs.push({
      kind: 'cni-config-shadowed',
      action: 'report',
      subject: `${cni.dir}/${name}`,
      expected: `${cni.file} first in ${cni.dir}`,
      actual: `${name} sorts first: a runtime taking the first config (kubelet, containerd, CRI-O) uses it, not podnet's`,
    });
  }
  return diffs;
}

/**
 * The files that keep network managers off podnet's links, where a manager is installed; and
 * pods' veths (CNI's names, peer in a pod's namespace) that something took off the bridge.
 */
function netManagerDiffs(desired: DesiredHostState, live: LiveHostState): HostDifference[] {
  const out: HostDifference[] = [];
  for (const c of unmanagedConfigs(desired.network)) {
    if (!live.netManagers?.dirs.includes(c.dir)) continue;
    const have = live.netManagers.files[c.path];
    if (have !== c.content)
      out.push({
        kind: 'unmanaged-config',
        action: have === undefined ? 'create' : 'update',
        subject: c.path,
        expected: `${c.manager} leaves ${desired.tunnel.device}, ${desired.bridge.device} and veths alone`,
        actual: have === undefined ? 'missing' : 'different',
      });
  }
  if (live.links.some((l) => l.name === desired.bridge.device)) {
    for (const l of live.links) {
      // A network manager letting go of a veth it had claimed sets it down, on the bridge or not.
      if (l.kind === 'veth' && l.peerNetns && (!l.master || !l.up) && CNI_VETH_NAME.test(l.name)) {
        out.push({
          kind: 'pod-off-bridge',
          action: 'update',
          subject: l.name,
          expected: `master ${desired.bridge.device}, up`,
          actual: [...(l.master ? [] : ['no master']), ...(l.up ? [] : ['down'])].join(', '),
        });
      }
    }
  }
  return out;
}

/**
 * A host firewall's filter FORWARD chain that would drop pod traffic: one whose policy is not
 * ACCEPT, or that has rules of its own, and lacks podnet's accept rules for the cluster CIDR.
 * `subject` names the iptables front end (the fix inserts exactly the missing rules there).
 */
function firewallDiffs(desired: DesiredHostState, live: LiveHostState): HostDifference[] {
  const out: HostDifference[] = [];
  const comment = forwardRuleComment(desired.network);
  for (const backend of IPTABLES_BACKENDS) {
    const chain = live.iptablesForward?.[backend];
    if (!chain) continue;
    const others = chain.rules.filter((r) => !r.includes(comment));
    if (chain.policy === 'ACCEPT' && others.length === 0) continue;
    const missing = forwardAcceptRules(desired.network, desired.clusterCidr)
      .map(savedRuleLine)
      .filter((line) => !chain.rules.includes(line));
    if (missing.length === 0) continue;
    out.push({
      kind: 'firewall-forward',
      action: 'update',
      subject: IPTABLES_COMMANDS[backend].iptables,
      expected: `filter FORWARD accepts ${desired.clusterCidr} (podnet's rules)`,
      actual: `policy ${chain.policy}${others.length ? `, ${others.length} rule(s) of others` : ''}; ${missing.length} of podnet's rules missing: pods cannot forward through it`,
    });
  }
  const fw = firewalldDiff(desired, live);
  return fw ? [...out, fw] : out;
}

/** What firewalld lacks for pods on this host; undefined where firewalld does not run. */
export interface FirewalldGaps {
  /** The zone the cluster CIDR is bound to (undefined: none). */
  readonly sourceZone?: string;
  /** podnet must bind the cluster CIDR to the trusted zone (it is in no zone and the default zone is not trusted). */
  readonly bindSource: boolean;
  /** The underlay's zone, where podnet must allow IP protocol 4 (undefined: it does already). */
  readonly protocolZone?: string;
  readonly underlayZone?: string;
}

export function firewalldGaps(desired: DesiredHostState, live: LiveHostState): FirewalldGaps | undefined {
  const fw = live.firewalld;
  if (!fw) return undefined;
  const sourceZone = fw.sources[desired.clusterCidr];
  const underlayZone = fw.interfaces[desired.underlay.device] ?? fw.defaultZone;
  const protocolOk = underlayZone === undefined || underlayZone === FIREWALLD_ZONE || fw.tunnelProtocolZones.includes(underlayZone);
  return {
    ...(sourceZone !== undefined ? { sourceZone } : {}),
    bindSource: sourceZone === undefined && fw.defaultZone !== FIREWALLD_ZONE,
    ...(protocolOk ? {} : { protocolZone: underlayZone }),
    ...(underlayZone !== undefined ? { underlayZone } : {}),
  };
}

/**
 * firewalld running with the cluster CIDR in none of its zones (so its default zone, which
 * rejects forwarding and all but a few services, gets pod traffic), or with the underlay's zone
 * rejecting IP protocol 4 (the kernel and userspace datapaths' outer packets); a cluster CIDR in a
 * zone that is not podnet's to change is reported only. `subject` is `firewalld`.
 */
function firewalldDiff(desired: DesiredHostState, live: LiveHostState): HostDifference | undefined {
  const gaps = firewalldGaps(desired, live);
  if (!gaps || (!gaps.bindSource && !gaps.protocolZone && (gaps.sourceZone ?? FIREWALLD_ZONE) === FIREWALLD_ZONE)) return undefined;
  const expected = `zone ${FIREWALLD_ZONE} holds source ${desired.clusterCidr}, zone ${gaps.underlayZone ?? '?'} accepts IP protocol 4 (podnet's, runtime)`;
  if (gaps.sourceZone !== undefined && gaps.sourceZone !== FIREWALLD_ZONE)
    return {
      kind: 'firewall-forward',
      action: 'report',
      subject: 'firewalld',
      expected,
      actual: `firewalld binds ${desired.clusterCidr} to zone ${gaps.sourceZone} (someone else's choice, left alone): pods get what that zone allows`,
    };
  const missing = [
    ...(gaps.bindSource
      ? [
          `${desired.clusterCidr} in no zone: its default zone ${live.firewalld?.defaultZone ?? '(unknown)'} rejects what pods forward and send to the host`,
        ]
      : []),
    ...(gaps.protocolZone ? [`zone ${gaps.protocolZone} (${desired.underlay.device}'s) rejects IP protocol 4 from peers`] : []),
  ];
  return { kind: 'firewall-forward', action: 'update', subject: 'firewalld', expected, actual: `firewalld running; ${missing.join('; ')}` };
}

/**
 * nft prints tables in its own canonical shape (tabs, `srcnat` as a number on old versions,
 * `random,fully-random` order); compare rule lines only, whitespace-normalised.
 */
export function normalizeNft(text: string): string {
  return text
    .split('\n')
    .map((l) => l.trim().replace(/\s+/g, ' '))
    .filter((l) => l.startsWith('ip ') || l.startsWith('type '))
    .map((l) =>
      l
        .replace(/priority (srcnat|filter|\d+)/, 'priority P')
        .replace(/ random,fully-random| fully-random,random| fully-random| random/g, ''),
    )
    .join('\n');
}
