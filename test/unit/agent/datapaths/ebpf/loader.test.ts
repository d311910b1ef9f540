import {
  attachArgs,
  detachArgs,
  parseAttach,
  parseLoaderCounters,
  peersSyncInput,
  podsSyncInput,
  toDatapathCounters,
} from '../../../../../agent/datapaths/ebpf/loader';
import { bpffsMountFor } from '../../../../../agent/datapaths/ebpf/index';

describe('podnet-bpf arguments', () => {
  it('builds attach with the pin dir first and every device named', () => {
    expect(
      attachArgs({
        pinDir: '/sys/fs/bpf/podnet',
        object: '/opt/podnet-ipip.bpf.o',
        tunnelDevice: 'flannel.ipip',
        underlayDevice: 'eth0',
        localAddress: '192.168.0.81',
      }),
    ).toEqual([
      '--pin-dir',
      '/sys/fs/bpf/podnet',
      'attach',
      '--json',
      '--object',
      '/opt/podnet-ipip.bpf.o',
      '--tunnel-dev',
      'flannel.ipip',
      '--underlay-dev',
      'eth0',
      '--local',
      '192.168.0.81',
    ]);
    expect(detachArgs('/p', 'flannel.ipip', 'eth0')).toEqual([
      '--pin-dir',
      '/p',
      'detach',
      '--json',
      '--tunnel-dev',
      'flannel.ipip',
      '--underlay-dev',
      'eth0',
    ]);
  });

  it('writes peers-sync input sorted, deduplicated and validated', () => {
    expect(
      peersSyncInput([
        { node: 'node2', address: '192.168.0.82', podCidr: '10.244.2.0/24' },
        { node: 'master', address: '192.168.0.80', podCidr: '10.244.0.0/24' },
        { node: 'node2', address: '192.168.0.82', podCidr: '10.244.2.0/24' },
      ]),
    ).toBe('10.244.0.0/24 192.168.0.80\n10.244.2.0/24 192.168.0.82\n');
    expect(peersSyncInput([])).toBe('');
    expect(() => peersSyncInput([{ node: 'x', address: '192.168.0.9', podCidr: '10.244.2.1/24' }])).toThrow(/host bits/);
    expect(() => peersSyncInput([{ node: 'x', address: 'node2', podCidr: '10.244.2.0/24' }])).toThrow(/not IPv4/);
    expect(() =>
      peersSyncInput([
        { node: 'a', address: '192.168.0.1', podCidr: '10.244.2.0/24' },
        { node: 'b', address: '192.168.0.2', podCidr: '10.244.2.0/24' },
      ]),
    ).toThrow(/claimed by two peers/);
  });

  it('writes pods-sync input one pod a line', () => {
    expect(podsSyncInput([{ ip: '10.244.1.2', ifindex: 7, podMac: 'aa:bb:cc:dd:ee:01', hostMac: 'aa:bb:cc:dd:ee:ff' }])).toBe(
      '10.244.1.2 7 aa:bb:cc:dd:ee:01 aa:bb:cc:dd:ee:ff\n',
    );
  });
});

describe('podnet-bpf output', () => {
  const json = JSON.stringify({
    peers: [
      { address: '192.168.0.82', index: 0, cidrs: ['10.244.2.0/24'], txPackets: 5, txBytes: 500, rxPackets: 4, rxBytes: 400 },
      { address: '192.168.0.80', index: 1, cidrs: ['10.244.0.0/24'], txPackets: 1, txBytes: 100, rxPackets: 0, rxBytes: 0 },
    ],
    drops: { noPeer: 2, unknownSource: 3, malformed: 1, notIpv4: 50, error: 0, unconfigured: 0, ecn: 4 },
    dropped: 60,
  });

  it('maps counters to node names, keeps drop reasons, and leaves non-IPv4 tunnel noise out of dropped', () => {
    const c = toDatapathCounters(
      parseLoaderCounters(json),
      new Map([
        ['192.168.0.82', 'node2'],
        ['192.168.0.80', 'master'],
      ]),
    );
    expect(c).toEqual({
      peers: [
        { node: 'master', txPackets: 1, txBytes: 100, rxPackets: 0, rxBytes: 0 },
        { node: 'node2', txPackets: 5, txBytes: 500, rxPackets: 4, rxBytes: 400 },
      ],
      dropped: 10,
      drops: {
        noPeer: 2,
        unknownSource: 3,
        malformed: 1,
        notIpv4: 50,
        error: 0,
        unconfigured: 0,
        ecn: 4,
        fragNeeded: 0,
        fragNeededForeign: 0,
      },
    });
  });

  it("passes a peer's learned path MTU and relayed ICMPs on to status, and nothing when none was learned", () => {
    const learned = JSON.stringify({
      peers: [
        {
          ...{ address: '192.168.0.80', index: 0, cidrs: ['10.244.0.0/24'], txPackets: 1, txBytes: 100, rxPackets: 0, rxBytes: 0 },
          ...{ pathMtu: 1400, fragNeededIn: 3, fragNeededRelayed: 2 },
        },
        { address: '192.168.0.82', index: 1, cidrs: ['10.244.2.0/24'], txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0 },
      ],
      drops: {},
      dropped: 0,
    });
    expect(toDatapathCounters(parseLoaderCounters(learned), new Map([['192.168.0.80', 'master']])).peers).toEqual([
      { node: '192.168.0.82', txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0 },
      { node: 'master', txPackets: 1, txBytes: 100, rxPackets: 0, rxBytes: 0, pathMtu: 1400, fragNeededRelayed: 2 },
    ]);
  });

  it('reads a reason the loader did not print as zero and refuses a non-number', () => {
    const old = JSON.stringify({ peers: [], drops: { noPeer: 1 }, dropped: 1 });
    expect(parseLoaderCounters(old).drops).toEqual({
      noPeer: 1,
      unknownSource: 0,
      malformed: 0,
      notIpv4: 0,
      error: 0,
      unconfigured: 0,
      ecn: 0,
      fragNeeded: 0,
      fragNeededForeign: 0,
    });
    expect(() => parseLoaderCounters(JSON.stringify({ peers: [], drops: { ecn: 'x' }, dropped: 0 }))).toThrow(/drops.ecn is not a number/);
  });

  it('names unknown peers by address and rejects garbage', () => {
    expect(toDatapathCounters(parseLoaderCounters(json), new Map()).peers.map((p) => p.node)).toEqual(['192.168.0.80', '192.168.0.82']);
    expect(() => parseLoaderCounters('{"x":1}')).toThrow(/unexpected output/);
    expect(parseAttach('{"egress":"adopted","ingress":"replaced"}')).toEqual({ egress: 'adopted', ingress: 'replaced' });
    expect(() => parseAttach('{"egress":"maybe","ingress":"adopted"}')).toThrow();
  });

  it('finds the bpffs mount holding the pin dir', () => {
    const mounts = 'sysfs /sys sysfs rw 0 0\nbpf /sys/fs/bpf bpf rw,relatime 0 0\nbpf /tmp/x bpf rw 0 0\n';
    expect(bpffsMountFor('/sys/fs/bpf/podnet', mounts)).toBe('/sys/fs/bpf');
    expect(bpffsMountFor('/tmp/x/h1', mounts)).toBe('/tmp/x');
    expect(bpffsMountFor('/tmp/xy', mounts)).toBeUndefined();
    expect(bpffsMountFor('/sys/fs/bpf/podnet', 'sysfs /sys sysfs rw 0 0\n')).toBeUndefined();
  });
});
