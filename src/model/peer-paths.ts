// flannel's DirectRouting rule (pkg/ip DirectRouting): a peer is routed without encapsulation
// only when the host's own route to the peer's address has no gateway, i.e. the peer is on a
// link of this host. The model's underlay prefix is a guess; the host's routing table knows.

/** A route of the host's main table, as far as the lookup needs it. */
export interface HostRoute {
  readonly destination: string; // with a prefix length, `0.0.0.0/0` for default
  readonly gateway?: string;
  readonly device?: string;
}

/** How this node reaches one peer's pods, and why: shown by plan and in the agent's status. */
export interface PeerPath {
  readonly tunnelled: boolean;
  readonly why: string;
}

function toInt(address: string): number | undefined {
  const parts = address.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

/** The longest-prefix match for `address` among `routes` (the main table; policy rules are not consulted). */
export function hostRouteTo(address: string, routes: readonly HostRoute[]): HostRoute | undefined {
  const a = toInt(address);
  if (a === undefined) return undefined;
  let best: HostRoute | undefined;
  let bestLen = -1;
  for (const r of routes) {
    const [net, lenText] = r.destination.split('/');
    const len = Number(lenText ?? 32);
    const n = toInt(net ?? '');
    if (n === undefined || !(len > bestLen)) continue;
    const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
    if ((a & mask) >>> 0 === (n & mask) >>> 0) {
      best = r;
      bestLen = len;
    }
  }
  return best;
}

const describe = (r: HostRoute): string =>
  `${r.destination === '0.0.0.0/0' ? 'default' : r.destination}${r.gateway ? ` via ${r.gateway}` : ''}${r.device ? ` dev ${r.device}` : ''}`;

/** The path to a peer at `address` when directRouting is on, from the host's routes. */
export function peerPathFromRoutes(address: string, routes: readonly HostRoute[]): PeerPath {
  const r = hostRouteTo(address, routes);
  if (!r) return { tunnelled: true, why: `the host has no route to ${address}` };
  return r.gateway
    ? { tunnelled: true, why: `the host's route to it (${describe(r)}) has a gateway` }
    : { tunnelled: false, why: `on a link of this host (${describe(r)})` };
}
