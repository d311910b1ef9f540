import type { NetworkSpec } from '../../src/model';
import { referenceNodes } from '../../examples/reference-network';

/** The reference network (README's, from examples/reference-network.ts), as a spec. */
export const referenceSpec: NetworkSpec = {
  name: 'cluster',
  clusterCidr: '10.244.0.0/16',
  subnetLength: 24,
  backend: { type: 'ipip' },
  nodes: referenceNodes,
};

/** A copy of the reference spec with some top-level fields replaced (or removed with undefined). */
export function withSpec(changes: Record<string, unknown>): unknown {
  return { ...referenceSpec, ...changes };
}

export function withNode(index: number, changes: Record<string, unknown>): unknown {
  return { ...referenceSpec, nodes: referenceSpec.nodes.map((n, i) => (i === index ? { ...n, ...changes } : n)) };
}
