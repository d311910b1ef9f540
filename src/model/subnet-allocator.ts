// Deterministic, stable pod subnet allocation (flannel's subnet manager, without etcd):
// an explicit podCidr wins; a lease a node already holds is kept; new nodes take the
// lowest free subnet. So adding or removing a node never moves another node's subnet.
import { cidrContains, cidrsOverlap, formatCidr, type Ipv4Cidr } from './ipv4';

export interface SubnetPool {
  readonly cluster: Ipv4Cidr;
  readonly subnetLength: number;
  /** Lowest and highest subnet base handed out. */
  readonly min: number;
  readonly max: number;
}

export interface AllocationRequest {
  readonly name: string;
  readonly explicit?: Ipv4Cidr;
}

export class SubnetExhaustedError extends Error {
  override readonly name = 'SubnetExhaustedError';
}

function fitsPool(pool: SubnetPool, cidr: Ipv4Cidr): boolean {
  return cidr.length === pool.subnetLength && cidrContains(pool.cluster, cidr) && cidr.base >= pool.min && cidr.base <= pool.max;
}

/**
 * Returns each node's subnet, in the order of `nodes`. `leases` are the subnets nodes hold now
 * (from hosts or an earlier allocation); a lease that no longer fits the pool or collides with
 * an explicit podCidr is dropped, and that node is allocated afresh.
 */
export function allocatePodSubnets(
  pool: SubnetPool,
  nodes: readonly AllocationRequest[],
  leases: ReadonlyMap<string, Ipv4Cidr> = new Map(),
): Map<string, Ipv4Cidr> {
  const result = new Map<string, Ipv4Cidr>();
  const taken: Ipv4Cidr[] = [];
  const isFree = (cidr: Ipv4Cidr) => !taken.some((t) => cidrsOverlap(t, cidr));

  for (const node of nodes) {
    if (node.explicit) {
      result.set(node.name, node.explicit);
      taken.push(node.explicit);
    }
  }
  // Leases are honoured in node order so that a conflict between two leases is decided
  // deterministically (the first node keeps it).
  for (const node of nodes) {
    if (result.has(node.name)) continue;
    const lease = leases.get(node.name);
    if (lease && fitsPool(pool, lease) && isFree(lease)) {
      result.set(node.name, lease);
      taken.push(lease);
    }
  }
  const step = 2 ** (32 - pool.subnetLength);
  let cursor = pool.min;
  for (const node of nodes) {
    if (result.has(node.name)) continue;
    while (cursor <= pool.max && !isFree({ base: cursor, length: pool.subnetLength })) cursor += step;
    if (cursor > pool.max) {
      throw new SubnetExhaustedError(`no free /${pool.subnetLength} left in ${formatCidr(pool.cluster)} for node ${node.name}`);
    }
    const cidr = { base: cursor, length: pool.subnetLength };
    result.set(node.name, cidr);
    taken.push(cidr);
  }
  return result;
}
