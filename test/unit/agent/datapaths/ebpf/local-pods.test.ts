import {
  diffPods,
  discoverLocalPods,
  isEmptyDiff,
  mergePods,
  parseBridgePorts,
  parseNetnsIds,
  parsePodInterface,
  podsFromNeighbours,
  type LocalPod,
} from '../../../../../agent/datapaths/ebpf/local-pods';
import type { Runner } from '../../../../../agent/host/runner';

const HOST = '6e:a1:72:a0:f1:ad';
const PORTS_JSON = JSON.stringify([
  {
    ifindex: 4,
    link_index: 2,
    ifname: 'veth1',
    master: 'cni0',
    address: HOST,
    link_netnsid: 1,
    linkinfo: { info_kind: 'veth', info_slave_kind: 'bridge' },
  },
  {
    ifindex: 6,
    link_index: 2,
    ifname: 'veth2',
    master: 'cni0',
    address: '22:00:00:00:00:06',
    link_netnsid: 2,
    linkinfo: { info_kind: 'veth', info_slave_kind: 'bridge' },
  },
  { ifindex: 9, ifname: 'vxlan0', master: 'cni0', linkinfo: { info_kind: 'vxlan' } },
]);
const POD_A_ADDR = JSON.stringify([
  { ifindex: 1, ifname: 'lo', address: '00:00:00:00:00:00', addr_info: [{ family: 'inet', local: '127.0.0.1' }] },
  {
    ifindex: 2,
    link_index: 4,
    ifname: 'eth0',
    address: '3A:AB:F8:34:B9:0B',
    addr_info: [
      { family: 'inet', local: '10.244.1.2', prefixlen: 24 },
      { family: 'inet6', local: 'fe80::1' },
    ],
  },
]);
const NEIGH = JSON.stringify([
  { dst: '10.244.1.3', lladdr: '7a:00:00:00:00:03', state: ['STALE'] },
  { dst: '10.244.1.9', lladdr: '7a:00:00:00:00:09', state: ['REACHABLE'] },
  { dst: '10.244.1.4', state: ['FAILED'] },
  { dst: '192.168.7.1', lladdr: '7a:00:00:00:00:03', state: ['REACHABLE'] },
]);
const FDB = JSON.stringify([
  { mac: '33:33:00:00:00:01', ifname: 'cni0', flags: ['self'], state: 'permanent' },
  { mac: '7a:00:00:00:00:03', ifname: 'veth2', flags: [], master: 'cni0', state: '' },
  { mac: '22:00:00:00:00:06', ifname: 'veth2', flags: [], master: 'cni0', state: 'permanent' },
  { mac: '7a:00:00:00:00:09', ifname: 'gone0', flags: [], master: 'cni0', state: '' },
]);

describe('local pod discovery: parsing', () => {
  it('reads veth ports with their peer ifindex and netns id', () => {
    expect(parseBridgePorts(PORTS_JSON)).toEqual([
      { ifname: 'veth1', ifindex: 4, peerIfindex: 2, netnsId: 1 },
      { ifname: 'veth2', ifindex: 6, peerIfindex: 2, netnsId: 2 },
    ]);
    expect(parseBridgePorts('')).toEqual([]);
  });

  it('maps netns ids to names, skipping unnamed ones', () => {
    expect(parseNetnsIds('[{"nsid":0,"name":"sw"},{"nsid":1,"name":"pod-a"},{"nsid":2}]')).toEqual(
      new Map([
        [0, 'sw'],
        [1, 'pod-a'],
      ]),
    );
  });

  it("reads the pod interface's MAC and IPv4 in the pod CIDR", () => {
    expect(parsePodInterface(POD_A_ADDR, 2, '10.244.1.0/24')).toEqual({ mac: '3a:ab:f8:34:b9:0b', ips: ['10.244.1.2'] });
    expect(parsePodInterface(POD_A_ADDR, 2, '10.244.2.0/24')).toEqual({ mac: '3a:ab:f8:34:b9:0b', ips: [] });
    expect(parsePodInterface(POD_A_ADDR, 7, '10.244.1.0/24')).toBeUndefined();
  });

  it('joins neighbours with the FDB, only for current ports and usable states', () => {
    expect(podsFromNeighbours(NEIGH, FDB, parseBridgePorts(PORTS_JSON), '10.244.1.0/24', HOST)).toEqual([
      { ip: '10.244.1.3', ifindex: 6, podMac: '7a:00:00:00:00:03', hostMac: HOST },
    ]);
  });
});

describe('local pod table', () => {
  const a: LocalPod = { ip: '10.244.1.2', ifindex: 4, podMac: '3a:ab:f8:34:b9:0b', hostMac: HOST };
  const b: LocalPod = { ip: '10.244.1.3', ifindex: 6, podMac: '7a:00:00:00:00:03', hostMac: HOST };

  it('prefers netns facts over neighbour guesses and drops IPs seen on two ports', () => {
    const stale = { ...a, ifindex: 99, podMac: '7a:00:00:00:00:99' };
    expect(mergePods([a], [stale, b])).toEqual([a, b]);
    expect(mergePods([], [b, { ...b, ifindex: 8 }])).toEqual([]);
    expect(mergePods([b, a])).toEqual([a, b]);
  });

  it('diffs desired against current', () => {
    expect(isEmptyDiff(diffPods([a, b], [b, a]))).toBe(true);
    expect(diffPods([a, { ...b, ifindex: 10 }], [b])).toEqual({ set: [a, { ...b, ifindex: 10 }], del: [] });
    expect(diffPods([a], [a, b])).toEqual({ set: [], del: ['10.244.1.3'] });
    expect(diffPods([], [])).toEqual({ set: [], del: [] });
  });

  it('discovers a fresh pod through its netns before it has sent anything', async () => {
    const calls: string[] = [];
    const run: Runner = async (file, args) => {
      const k = [file, ...args].join(' ');
      calls.push(k);
      const out: Record<string, string> = {
        'ip -json link show dev cni0': JSON.stringify([{ ifindex: 3, ifname: 'cni0', address: HOST }]),
        'ip -json -d link show master cni0': PORTS_JSON,
        'ip -json netns list-id': '[{"nsid":1,"name":"pod-a"}]',
        'ip -n pod-a -json addr show': POD_A_ADDR,
        'ip -json neigh show dev cni0': '[]',
        'bridge -json fdb show br cni0': FDB,
      };
      return k in out ? { code: 0, stdout: out[k]!, stderr: '' } : { code: 1, stdout: '', stderr: 'no' };
    };
    expect(await discoverLocalPods(run, { bridge: 'cni0', podCidr: '10.244.1.0/24' })).toEqual([a]);
    expect(calls).toContain('ip -n pod-a -json addr show');
  });

  it('returns nothing when there is no bridge yet', async () => {
    const run: Runner = async () => ({ code: 1, stdout: '', stderr: 'Device "cni0" does not exist.' });
    expect(await discoverLocalPods(run, { bridge: 'cni0', podCidr: '10.244.1.0/24' })).toEqual([]);
  });
});

describe('local pod discovery: only addresses IPAM could have given', () => {
  // A pod with NET_ADMIN can put any address on its own interface; the fast path must never
  // deliver the node's traffic (tunnel .0, gateway .1) or broadcast into it.
  const claims = JSON.stringify([
    {
      ifindex: 2,
      link_index: 4,
      ifname: 'eth0',
      address: '3a:ab:f8:34:b9:0b',
      addr_info: ['10.244.1.5', '10.244.1.0', '10.244.1.1', '10.244.1.255'].map((local) => ({ family: 'inet', local, prefixlen: 24 })),
    },
  ]);

  it('keeps a pod address and drops the tunnel, gateway and broadcast addresses it claims', () => {
    expect(parsePodInterface(claims, 2, '10.244.1.0/24')).toEqual({ mac: '3a:ab:f8:34:b9:0b', ips: ['10.244.1.5'] });
  });

  it('ignores neighbour entries for the tunnel, gateway and broadcast addresses', () => {
    const neigh = JSON.stringify(
      ['10.244.1.0', '10.244.1.1', '10.244.1.255', '10.244.1.3'].map((dst) => ({ dst, lladdr: '7a:00:00:00:00:03', state: ['REACHABLE'] })),
    );
    expect(podsFromNeighbours(neigh, FDB, parseBridgePorts(PORTS_JSON), '10.244.1.0/24', HOST).map((p) => p.ip)).toEqual(['10.244.1.3']);
  });
});
