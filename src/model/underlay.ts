// The underlay a node's tunnel rides on, found on the host the way flanneld finds it
// (pkg/ip + LookupExtIface): the interface that holds the node's address, unless one is
// declared; the tunnel MTU is that interface's MTU minus the 20-byte outer IPv4 header,
// unless `mtu` is declared. Pure: the agent and the engine both pass in what the host shows.
import type { Network, NetworkNode } from './network';

/** Where a value came from: the model (`declared`), the host (`detected`), or neither (`default`, offline only). */
export type FactSource = 'declared' | 'detected' | 'default';

/** The IPv4 outer header ipip adds to every packet. */
export const IPIP_OVERHEAD = 20;

export interface HostUnderlay {
  /** The interface tunnelled packets leave by, e.g. `eth0`, `ens33`. */
  readonly device: string;
  readonly deviceSource: FactSource;
  /** What the underlay carries, in bytes: the interface's MTU, or the declared `underlay.mtu`. */
  readonly mtu: number;
  readonly mtuSource: FactSource;
  /** flannel.ipip's MTU (and FLANNEL_MTU, and the pods'): the declared `mtu` or `mtu - 20`. */
  readonly tunnelMtu: number;
  readonly tunnelMtuSource: FactSource;
}

/** What discovery needs to know of a host: its links and IPv4 addresses (as `ip -json` shows them). */
export interface UnderlayFacts {
  readonly links: readonly { readonly name: string; readonly mtu: number }[];
  readonly addresses: readonly { readonly device: string; readonly cidr: string }[];
}

/** The host cannot carry the node's tunnel as declared; the message names the host, what exists and what to set. */
export class UnderlayError extends Error {
  override readonly name = 'UnderlayError';
}

const DEFAULT_INTERFACE = 'eth0';
const DEFAULT_MTU = 1500;

/**
 * The underlay from the declarations alone (no host read): `eth0` and 1500 where nothing is
 * declared. For the offline plan and the deploy revision, which must not depend on a host.
 */
export function assumedUnderlay(network: Network, node: NetworkNode): HostUnderlay {
  const mtu = network.underlay.mtu ?? DEFAULT_MTU;
  return {
    device: node.underlayInterface ?? DEFAULT_INTERFACE,
    deviceSource: node.underlayInterface ? 'declared' : 'default',
    mtu,
    mtuSource: network.underlay.mtu ? 'declared' : 'default',
    tunnelMtu: network.mtu ?? mtu - IPIP_OVERHEAD,
    tunnelMtuSource: network.mtu ? 'declared' : 'default',
  };
}

function describeInterfaces(facts: UnderlayFacts): string {
  const rows = facts.links
    .filter((l) => l.name !== 'lo')
    .map((l) => {
      const addrs = facts.addresses.filter((a) => a.device === l.name).map((a) => a.cidr);
      return `${l.name} (mtu ${l.mtu}${addrs.length ? `, ${addrs.join(' ')}` : ''})`;
    });
  return rows.length ? rows.join(', ') : 'none';
}

const holds = (facts: UnderlayFacts, device: string, address: string): boolean =>
  facts.addresses.some((a) => a.device === device && a.cidr.split('/')[0] === address);

/**
 * The node's underlay on a host showing `facts`. Throws UnderlayError when a declared
 * interface does not exist or does not hold the node's address, when no interface holds it,
 * or when a declared MTU is above what the interface carries.
 */
export function discoverUnderlay(network: Network, node: NetworkNode, facts: UnderlayFacts): HostUnderlay {
  const where = `host ${node.name} (${node.address})`;
  let device = node.underlayInterface;
  if (device !== undefined) {
    if (!facts.links.some((l) => l.name === device)) {
      throw new UnderlayError(
        `${where}: the declared underlay interface ${device} does not exist; the host has ${describeInterfaces(facts)}. Set underlayInterface to one of them, or leave it out to use the one holding ${node.address}`,
      );
    }
    if (!holds(facts, device, node.address)) {
      throw new UnderlayError(
        `${where}: the declared underlay interface ${device} does not hold ${node.address}; the host has ${describeInterfaces(facts)}. Set underlayInterface to the interface holding ${node.address}, or leave it out`,
      );
    }
  } else {
    device = facts.addresses.find((a) => a.cidr.split('/')[0] === node.address)?.device;
    if (device === undefined) {
      throw new UnderlayError(
        `${where}: no interface holds ${node.address}; the host has ${describeInterfaces(facts)}. Set the node's address to one of the host's own addresses (the outer source of its tunnel)`,
      );
    }
  }
  const linkMtu = facts.links.find((l) => l.name === device)!.mtu;
  const declaredMtu = network.underlay.mtu;
  if (declaredMtu !== undefined && declaredMtu > linkMtu) {
    throw new UnderlayError(
      `${where}: the declared underlay.mtu ${declaredMtu} is above ${device}'s MTU ${linkMtu}. Set underlay.mtu to at most ${linkMtu}, or leave it out to use ${device}'s`,
    );
  }
  const mtu = declaredMtu ?? linkMtu;
  if (network.mtu !== undefined && network.mtu > mtu - IPIP_OVERHEAD) {
    const what = declaredMtu !== undefined ? `the declared underlay.mtu ${mtu}` : `${device}'s MTU ${mtu}`;
    throw new UnderlayError(
      `${where}: the declared mtu ${network.mtu} is above what the underlay carries (${what} - ${IPIP_OVERHEAD} = ${mtu - IPIP_OVERHEAD}). Set mtu to at most ${mtu - IPIP_OVERHEAD}, or leave it out to follow each host's underlay`,
    );
  }
  return {
    device,
    deviceSource: node.underlayInterface !== undefined ? 'declared' : 'detected',
    mtu,
    mtuSource: declaredMtu !== undefined ? 'declared' : 'detected',
    tunnelMtu: network.mtu ?? mtu - IPIP_OVERHEAD,
    tunnelMtuSource: network.mtu !== undefined ? 'declared' : 'detected',
  };
}

/**
 * Whether an agent that started on `used` no longer carries the tunnel on what the host shows
 * now (`found`): the node's address moved to another interface, or the tunnel MTU the
 * interface allows changed. The agent discovers its underlay once at start, so apply restarts
 * it and drift reports `underlay-changed`; the sources (declared/detected) do not matter.
 */
export function underlayChanged(used: HostUnderlay, found: HostUnderlay): boolean {
  return used.device !== found.device || used.tunnelMtu !== found.tunnelMtu;
}

/** One line for plan and status: `eth0 (detected), mtu 1450 (detected), tunnel mtu 1430 (underlay - 20)`. */
export function describeUnderlay(u: HostUnderlay): string {
  const tunnel = u.tunnelMtuSource === 'declared' ? 'declared' : `underlay - ${IPIP_OVERHEAD}`;
  return `${u.device} (${u.deviceSource}), mtu ${u.mtu} (${u.mtuSource}), tunnel mtu ${u.tunnelMtu} (${tunnel})`;
}
