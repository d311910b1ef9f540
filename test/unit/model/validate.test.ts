import { NetworkValidationError, resolveNetwork, validateNetworkSpec } from '../../../src/model';
import { referenceSpec, withNode, withSpec } from '../reference-network';

// Each row: a bad input, the field the message must name, and words it must contain.
const badInputs: Array<[string, unknown, string, RegExp]> = [
  ['malformed cluster CIDR', withSpec({ clusterCidr: '10.244.0/16' }), 'clusterCidr', /malformed IPv4/],
  ['cluster CIDR without prefix', withSpec({ clusterCidr: '10.244.0.0' }), 'clusterCidr', /CIDR notation/],
  [
    'cluster CIDR with host bits',
    withSpec({ clusterCidr: '10.244.1.0/16' }),
    'clusterCidr',
    /host bits set \(did you mean 10\.244\.0\.0\/16\?\)/,
  ],
  ['cluster prefix out of range', withSpec({ clusterCidr: '10.244.0.0/33' }), 'clusterCidr', /prefix length/],
  ['cluster CIDR not a string', withSpec({ clusterCidr: 42 }), 'clusterCidr', /CIDR string/],
  ['subnet length not longer than cluster', withSpec({ subnetLength: 16 }), 'subnetLength', /longer than the cluster CIDR's \/16/],
  ['subnet length longer than /30', withSpec({ subnetLength: 31 }), 'subnetLength', /at most 30/],
  ['subnet length not a whole number', withSpec({ subnetLength: 24.5 }), 'subnetLength', /whole number/],
  [
    'podCidr outside the cluster CIDR',
    withNode(1, { podCidr: '10.245.1.0/24' }),
    'nodes[1].podCidr',
    /outside the cluster CIDR 10\.244\.0\.0\/16/,
  ],
  ['podCidr of the wrong size', withNode(1, { podCidr: '10.244.1.0/25' }), 'nodes[1].podCidr', /must be a \/24/],
  ['podCidr with host bits', withNode(1, { podCidr: '10.244.1.7/24' }), 'nodes[1].podCidr', /host bits/],
  [
    'duplicate podCidrs',
    {
      ...referenceSpec,
      nodes: [
        { ...referenceSpec.nodes[0], podCidr: '10.244.5.0/24' },
        { ...referenceSpec.nodes[1], podCidr: '10.244.5.0/24' },
      ],
    },
    'nodes[1].podCidr',
    /duplicates nodes\[0\]\.podCidr/,
  ],
  ['duplicate node names', withNode(2, { name: 'node1' }), 'nodes[2].name', /duplicates nodes\[1\]\.name/],
  ['duplicate node addresses', withNode(2, { address: '192.168.0.81' }), 'nodes[2].address', /duplicates nodes\[1\]\.address/],
  ['node address inside the cluster CIDR', withNode(0, { address: '10.244.9.9' }), 'nodes[0].address', /inside the cluster CIDR/],
  ['malformed node address', withNode(0, { address: '192.168.0.300' }), 'nodes[0].address', /IPv4 address/],
  ['loopback node address', withNode(0, { address: '127.0.0.1' }), 'nodes[0].address', /loopback/],
  ['multicast node address', withNode(0, { address: '239.1.1.1' }), 'nodes[0].address', /multicast/],
  ['invalid hostname', withNode(0, { name: 'Master_1' }), 'nodes[0].name', /hostname/],
  ['MTU too small', withSpec({ mtu: 500 }), 'mtu', /between 576 and 65535/],
  ['MTU above the declared underlay MTU - 20', withSpec({ mtu: 1490, underlay: { mtu: 1500 } }), 'mtu', /at most .* \(1480\)/],
  ['underlay MTU out of range', withSpec({ underlay: { mtu: 100 } }), 'underlay.mtu', /between/],
  ['empty node list', withSpec({ nodes: [] }), 'nodes', /at least one node/],
  ['nodes not a list', withSpec({ nodes: 'master' }), 'nodes', /list of nodes/],
  [
    'more nodes than subnets',
    withSpec({ clusterCidr: '10.244.0.0/23', subnetLength: 24 }),
    'nodes',
    /3 nodes need 3 pod subnets, but 10\.244\.0\.0\/23 .* has only 2/,
  ],
  ['unknown backend', withSpec({ backend: { type: 'vxlan' } }), 'backend.type', /unknown backend \(only "ipip"/],
  ['unknown datapath', withSpec({ backend: { type: 'ipip', datapath: 'dpdk' } }), 'backend.datapath', /unknown datapath/],
  ['unknown node datapath', withNode(1, { datapath: 'fast' }), 'nodes[1].datapath', /unknown datapath/],
  ['directRouting not a boolean', withSpec({ backend: { type: 'ipip', directRouting: 'yes' } }), 'backend.directRouting', /true or false/],
  ['misspelt field', withSpec({ clusterCIDR: '10.244.0.0/16' }), 'clusterCIDR', /unknown field \(did you mean clusterCidr\?\)/],
  ['invalid network name', withSpec({ name: 'My Net' }), 'name', /lowercase/],
  ['network name whose nft table is the kernel peer filter', withSpec({ name: 'ipip' }), 'name', /reserved.*podnet_ipip/],
  ['network name ending in -notrack', withSpec({ name: 'blue-notrack' }), 'name', /'blue''s conntrack bypass table/],
  ['SSH port out of range', withSpec({ ssh: { port: 70000 } }), 'ssh.port', /between 1 and 65535/],
  ['subnetMin outside cluster', withSpec({ subnetMin: '10.245.0.0/24' }), 'subnetMin', /outside the cluster CIDR/],
  ['subnetMin above subnetMax', withSpec({ subnetMin: '10.244.9.0/24', subnetMax: '10.244.2.0/24' }), 'subnetMin', /above subnetMax/],
  ['ipMasq not a boolean', withSpec({ ipMasq: 'true' }), 'ipMasq', /true or false/],
  ['agentRuntime unknown', withSpec({ agentRuntime: 'docker' }), 'agentRuntime', /expected one of auto, host, bundled/],
  [
    'bad underlay interface',
    withNode(0, { underlayInterface: 'a-very-long-interface-name' }),
    'nodes[0].underlayInterface',
    /interface name/,
  ],
];

describe('network validation names the field and the value', () => {
  it('has at least 20 distinct bad inputs', () => {
    expect(new Set(badInputs.map((row) => row[0])).size).toBeGreaterThanOrEqual(20);
  });

  it.each(badInputs)('%s', (_title, input, field, words) => {
    const problems = validateNetworkSpec(input);
    const problem = problems.find((p) => p.field === field);
    expect(problem).toBeDefined();
    expect(problem!.message).toMatch(words);
    expect(() => resolveNetwork(input)).toThrow(NetworkValidationError);
    // The thrown message names the field (and the value, when there is one).
    try {
      resolveNetwork(input);
    } catch (err) {
      expect((err as Error).message).toContain(field);
      if (problem!.value !== undefined) expect((err as Error).message).toContain(JSON.stringify(problem!.value));
    }
  });

  it('accepts the reference network', () => {
    expect(validateNetworkSpec(referenceSpec)).toEqual([]);
  });

  it('reports one message for one typo, not a cascade', () => {
    expect(validateNetworkSpec(withSpec({ clusterCidr: 'nope' }))).toHaveLength(1);
  });

  it('rejects a non-object', () => {
    expect(validateNetworkSpec(null)[0]!.field).toBe('network');
  });
});
