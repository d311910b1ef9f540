// podnet state on a host that the network being planned no longer wants: an older generation
// of the same network (routes and addresses a clusterCidr or subnet change left), and other
// podnet networks (a rename's old name). Pure; only what podnet made is ever called stale:
// proto-152 routes, addresses on flannel.ipip (podnet's by name) and those on cni0 the
// ownership record says podnet put there, and what carries a podnet network's name.
import {
  BRIDGE_DEVICE,
  cidrContains,
  KERNEL_PEER_FILTER_TABLE,
  conntrackBypassTableName,
  nftTableName,
  parseCidr,
  podnetAddressesOn,
  ROUTE_PROTOCOL,
  SUBNET_ENV_PATH,
  TUNNEL_DEVICE,
  unitName,
  type DesiredHostState,
} from '../model';
import type { LiveHostState, PodnetTraces } from '../host/live-state';

/** A stale piece of the network's own state, as host-diff's differences (delete). */
export interface StaleDifference {
  readonly kind: 'route-stale' | 'address-stale';
  readonly action: 'delete';
  /** The route's destination; for an address, `<cidr> dev <device>`. */
  readonly subject: string;
  readonly actual: string;
}

/**
 * podnet's routes outside the cluster CIDR, through the tunnel or to a peer node (those inside
 * it that no peer needs are `route-extra`), and podnet's addresses on the tunnel and the bridge other than the ones
 * wanted. `describe` renders a route as the diff does.
 */
export function staleOwnState(
  desired: DesiredHostState,
  live: LiveHostState,
  describe: (r: LiveHostState['routes'][number]) => string,
): StaleDifference[] {
  const out: StaleDifference[] = [];
  const cluster = parseCidr(desired.clusterCidr);
  const wanted = new Set(desired.routes.map((r) => r.destination));
  // podnet's routes go through the tunnel, or (directRouting) straight to a peer node: a
  // proto-152 route elsewhere (via a router, say) is not taken for an older generation's.
  const peers = new Set(desired.peers.map((p) => p.address));
  for (const route of live.routes) {
    if (route.protocol !== String(ROUTE_PROTOCOL) || wanted.has(route.destination)) continue;
    if (route.device !== desired.tunnel.device && !(route.gateway !== undefined && peers.has(route.gateway))) continue;
    const dst = parseCidr(route.destination);
    if (cluster.ok && dst.ok && cidrContains(cluster.cidr, dst.cidr)) continue;
    out.push({
      kind: 'route-stale',
      action: 'delete',
      subject: route.destination,
      actual: `${describe(route)} proto ${ROUTE_PROTOCOL}: outside cluster ${desired.clusterCidr}, an older generation's`,
    });
  }
  const owners: Array<[string, string, (cidr: string) => boolean]> = [
    [desired.tunnel.device, desired.tunnel.address, () => true],
    [
      desired.bridge.device,
      desired.bridge.address,
      (cidr) => {
        const own = podnetAddressesOn(live.owned, desired.bridge.device);
        return own.all || own.added.includes(cidr);
      },
    ],
  ];
  for (const [device, address, isPodnets] of owners) {
    for (const a of live.addresses) {
      if (a.device !== device || a.cidr === address || !isPodnets(a.cidr)) continue;
      out.push({
        kind: 'address-stale',
        action: 'delete',
        subject: `${a.cidr} dev ${device}`,
        actual: `podnet's address beside ${address}, an older generation's`,
      });
    }
  }
  return out;
}

/** Another podnet network on the host (or, with no name, a `podnet_*` table nothing claims). */
export interface OtherNetwork {
  /** Its name; undefined for an nftables table no network's traces claim. */
  readonly network?: string;
  /** Its unit's ActiveState, when it has a unit running podnet's agent. */
  readonly unitState?: string;
  /** Its agent runs (its unit is active or between states): its host cannot take this network. */
  readonly running: boolean;
  /** Its agent config is there: its own teardown can run. */
  readonly hasConfig: boolean;
  /**
   * Its own teardown runs (with its config and ownership record), as its destroy would. False
   * when it has no config, or when the network being planned has left traces of its own here
   * (see ownTracesOn): flannel.ipip, cni0, the proto-152 routes and the BPF pins may then be that
   * network's, carrying its traffic even while its unit is failed or restarting, and only what
   * carries the other network's name goes.
   */
  readonly teardown: boolean;
  /** What is there, for people: `podnet-blue.service (inactive)`, `config`, `status`, `nft table podnet_blue`. */
  readonly pieces: readonly string[];
  /** nftables tables of its (removed by name when no teardown can run). */
  readonly nftTables: readonly string[];
}

/** ActiveStates in which a unit's agent runs or is about to. */
const RUNNING_STATES = new Set(['active', 'activating', 'reloading', 'deactivating', 'refreshing']);

/**
 * Whether `network` itself may hold the state every network shares on the host: its ownership
 * record (`ownRecord`: the agent writes it before it creates anything), config or status file is
 * there. Its unit's state does not tell: a failed or restarting agent leaves its devices, routes
 * and pins in place, still carrying traffic.
 */
export function ownTracesOn(network: string, traces: PodnetTraces, ownRecord: boolean): boolean {
  return ownRecord || traces.configs.includes(network) || traces.statuses.includes(network);
}

/**
 * Every podnet network on the host other than `network`, from its traces; `ownRecord`: the
 * host holds `network`'s ownership record (then no other network's full teardown runs).
 */
export function otherNetworks(network: string, traces: PodnetTraces | undefined, ownRecord: boolean): OtherNetwork[] {
  if (!traces) return [];
  const own = ownTracesOn(network, traces, ownRecord);
  const names = [...new Set([...Object.keys(traces.units), ...traces.configs, ...traces.statuses])].filter((n) => n !== network).sort();
  const claimed = new Set([nftTableName(network), conntrackBypassTableName(network), KERNEL_PEER_FILTER_TABLE]);
  const out: OtherNetwork[] = names.map((name) => {
    const named = [nftTableName(name), conntrackBypassTableName(name)];
    for (const t of named) claimed.add(t);
    const state = traces.units[name];
    const tables = named.filter((t) => traces.nftTables.includes(t));
    return {
      network: name,
      ...(state !== undefined ? { unitState: state } : {}),
      running: state !== undefined && RUNNING_STATES.has(state),
      hasConfig: traces.configs.includes(name),
      teardown: traces.configs.includes(name) && !own,
      pieces: [
        ...(state !== undefined ? [`${unitName(name)} (${state})`] : []),
        ...(traces.configs.includes(name) ? ['config'] : []),
        ...(traces.statuses.includes(name) ? ['status'] : []),
        ...tables.map((t) => `nft table ${t}`),
      ],
      nftTables: tables,
    };
  });
  for (const table of traces.nftTables.filter((t) => !claimed.has(t)))
    out.push({ running: false, hasConfig: false, teardown: false, pieces: [`nft table ${table}`], nftTables: [table] });
  return out;
}

/** How a host's other network reads in plan, drift and errors: `network 'blue'` or `nft table podnet_x`. */
export function otherNetworkName(o: OtherNetwork): string {
  return o.network !== undefined ? `network '${o.network}'` : o.pieces.join(', ');
}

/**
 * Why `network` cannot go on a host where other networks' agents run: flannel.ipip, cni0 and
 * subnet.env exist once per host. Names each (with what shows it runs: `podnet-blue.service is
 * active` for the engine, `agent pid 7` for the agent that refuses to start) and what to do.
 * The one text of that rule, for plan, apply and the agent's status alike.
 */
export function sharedDevicesMessage(network: string, running: readonly { readonly network: string; readonly evidence: string }[]): string {
  const names = running.map((o) => `'${o.network}' (${o.evidence})`);
  return `this host already runs podnet network ${names.join(', ')}: ${TUNNEL_DEVICE}, ${BRIDGE_DEVICE} and ${SUBNET_ENV_PATH} exist once per host, so network '${network}' cannot go beside it; destroy ${running.length > 1 ? 'those' : `'${running[0]!.network}'`} on this host first (podnet destroy with its manifest), or stop and disable its agent (systemctl disable --now ${running.map((o) => unitName(o.network)).join(' ')}) and apply again: apply then removes what it left`;
}

/** sharedDevicesMessage for the other networks a host reading found running. */
export function runningOthersMessage(network: string, running: readonly OtherNetwork[]): string {
  return sharedDevicesMessage(
    network,
    running.map((o) => ({ network: o.network!, evidence: `${unitName(o.network!)} is ${o.unitState}` })),
  );
}
