import {
  allocatePodSubnets,
  formatCidr,
  parseCidr,
  resolveNetwork,
  SubnetExhaustedError,
  type Ipv4Cidr,
  type SubnetPool,
} from '../../../src/model';
import { referenceSpec } from '../reference-network';

const cidr = (text: string): Ipv4Cidr => {
  const parsed = parseCidr(text);
  if (!parsed.ok) throw new Error(text);
  return parsed.cidr;
};
const pool: SubnetPool = {
  cluster: cidr('10.244.0.0/16'),
  subnetLength: 24,
  min: cidr('10.244.0.0/24').base,
  max: cidr('10.244.255.0/24').base,
};
const show = (m: Map<string, Ipv4Cidr>) => Object.fromEntries([...m].map(([k, v]) => [k, formatCidr(v)]));

/** A small deterministic PRNG so the property runs are repeatable. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

describe('PodSubnet allocation', () => {
  it.each([
    ['new nodes take the lowest free subnets in order', [{ name: 'a' }, { name: 'b' }], {}, { a: '10.244.0.0/24', b: '10.244.1.0/24' }],
    [
      'an explicit podCidr wins',
      [{ name: 'a', explicit: cidr('10.244.7.0/24') }, { name: 'b' }],
      {},
      { a: '10.244.7.0/24', b: '10.244.0.0/24' },
    ],
    ['a held lease is kept', [{ name: 'a' }, { name: 'b' }], { b: '10.244.0.0/24' }, { a: '10.244.1.0/24', b: '10.244.0.0/24' }],
    [
      'an explicit podCidr beats a conflicting lease',
      [{ name: 'a', explicit: cidr('10.244.3.0/24') }, { name: 'b' }],
      { b: '10.244.3.0/24' },
      { a: '10.244.3.0/24', b: '10.244.0.0/24' },
    ],
    ['a lease outside the pool is dropped', [{ name: 'a' }], { a: '10.245.0.0/24' }, { a: '10.244.0.0/24' }],
    [
      'two nodes holding one lease: the first keeps it',
      [{ name: 'a' }, { name: 'b' }],
      { a: '10.244.4.0/24', b: '10.244.4.0/24' },
      { a: '10.244.4.0/24', b: '10.244.0.0/24' },
    ],
  ])('%s', (_t, nodes, leases, expected) => {
    const leaseMap = new Map(Object.entries(leases as Record<string, string>).map(([k, v]) => [k, cidr(v)]));
    expect(show(allocatePodSubnets(pool, nodes, leaseMap))).toEqual(expected);
  });

  it('fails clearly when the pool is exhausted', () => {
    const tiny = { ...pool, max: pool.min };
    expect(() => allocatePodSubnets(tiny, [{ name: 'a' }, { name: 'b' }])).toThrow(SubnetExhaustedError);
    expect(() => allocatePodSubnets(tiny, [{ name: 'a' }, { name: 'b' }])).toThrow(/node b/);
  });

  it('property: adding or removing nodes never moves another node (200 random histories)', () => {
    const next = rng(42);
    for (let run = 0; run < 200; run++) {
      let names = ['n0', 'n1', 'n2'];
      let leases = allocatePodSubnets(
        pool,
        names.map((name) => ({ name })),
      );
      let counter = 3;
      for (let step = 0; step < 10; step++) {
        if (next() < 0.5 && names.length > 1) {
          names = names.filter((_, i) => i !== Math.floor(next() * names.length));
        } else {
          const at = Math.floor(next() * (names.length + 1));
          names = [...names.slice(0, at), `n${counter++}`, ...names.slice(at)];
        }
        const allocation = allocatePodSubnets(
          pool,
          names.map((name) => ({ name })),
          leases,
        );
        for (const name of names) {
          const before = leases.get(name);
          if (before) expect(formatCidr(allocation.get(name)!)).toBe(formatCidr(before));
        }
        const all = [...allocation.values()].map(formatCidr);
        expect(new Set(all).size).toBe(all.length);
        leases = allocation;
      }
    }
  });

  it('is deterministic: the same input gives the same output', () => {
    const nodes = Array.from({ length: 50 }, (_, i) => ({ name: `n${i}` }));
    expect(show(allocatePodSubnets(pool, nodes))).toEqual(show(allocatePodSubnets(pool, nodes)));
  });

  it('resolveNetwork gives the reference network its DESIGN.md subnets', () => {
    const network = resolveNetwork(referenceSpec);
    expect(network.nodes.map((n) => [n.name, n.podCidr])).toEqual([
      ['master', '10.244.0.0/24'],
      ['node1', '10.244.1.0/24'],
      ['node2', '10.244.2.0/24'],
    ]);
    // No MTU declared: each host's agent takes its underlay's MTU - 20 (model/underlay.ts).
    expect(network.mtu).toBeUndefined();
  });

  it('removing node1 from the reference network keeps node2 on its lease', () => {
    const before = resolveNetwork(referenceSpec);
    const leases = Object.fromEntries(before.nodes.map((n) => [n.name, n.podCidr]));
    const after = resolveNetwork({ ...referenceSpec, nodes: referenceSpec.nodes.filter((n) => n.name !== 'node1') }, leases);
    expect(after.nodes.find((n) => n.name === 'node2')!.podCidr).toBe('10.244.2.0/24');
    const added = resolveNetwork(
      { ...referenceSpec, nodes: [...referenceSpec.nodes.filter((n) => n.name !== 'node1'), { name: 'node3', address: '192.168.0.83' }] },
      leases,
    );
    expect(added.nodes.find((n) => n.name === 'node3')!.podCidr).toBe('10.244.1.0/24');
  });
});
