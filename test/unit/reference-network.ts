import type { NetworkSpec } from '../../src/model';

/** The reference network of DESIGN.md, as a spec. */
export const referenceSpec: NetworkSpec = {
  name: 'cluster',
  clusterCidr: '10.244.0.0/16',
  subnetLength: 24,
  backend: { type: 'ipip' },
  nodes: [
    { name: 'master', address: '192.168.0.80' },
    { name: 'node1', address: '192.168.0.81' },
    { name: 'node2', address: '192.168.0.82' },
  ],
};

/** A copy of the reference spec with some top-level fields replaced (or removed with undefined). */
export function withSpec(changes: Record<string, unknown>): unknown {
  return { ...referenceSpec, ...changes };
}

export function withNode(index: number, changes: Record<string, unknown>): unknown {
  return { ...referenceSpec, nodes: referenceSpec.nodes.map((n, i) => (i === index ? { ...n, ...changes } : n)) };
}
