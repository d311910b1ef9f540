// The userspace datapath's packet codec against hand-built packets: the outer header must be
// what kernel ipip (`ttl inherit nopmtudisc`, tos 0) puts on the wire (datapath-reference
// FINDINGS: protocol 4, TTL = inner TTL, DF = inner DF, TOS = inner ECN with CE sent as ECT(0),
// valid header checksum, no inner Ethernet header), and decapsulation must accept exactly
// protocol 4 from known peers to this node, with RFC 6040 ECN.
import {
  Decapsulated,
  OUTER_HLEN,
  PeerTable,
  VNET_HLEN,
  decapsulate,
  encapsulate,
  innerDestination,
  ipHeaderValid,
  onesSum,
  outerTos,
  writeVnetHeader,
} from '../../../../../agent/datapaths/userspace/ipip-codec';
import { requireIpv4 as ipv4ToU32 } from '../../../../../src/model/ipv4';
import { icmpEcho, ip, ipv4Header, rfc1071 } from './packets';
import { USERSPACE_DROP_REASONS, zeroDrops } from '../../../../../src/model/drop-reasons';
import { foldCounters, makeUserspaceDatapathFactory, toUserspaceCounters } from '../../../../../agent/datapaths/userspace/index';
import { DATAPATH_FACTORIES } from '../../../../../agent/datapaths/registry';
import { node1Host } from '../node1-host';

const NODE1 = ipv4ToU32('192.168.0.81');
const NODE2 = ipv4ToU32('192.168.0.82');
const PEERS = new PeerTable([
  { node: 'master', address: '192.168.0.80', podCidr: '10.244.0.0/24' },
  { node: 'node2', address: '192.168.0.82', podCidr: '10.244.2.0/24' },
]);

/** The inner packet placed after 20 bytes of headroom, as the worker lays out its slots. */
function withHeadroom(inner: Uint8Array): Buffer {
  const b = Buffer.alloc(OUTER_HLEN + inner.length);
  b.set(inner, OUTER_HLEN);
  return b;
}

describe('IPv4 checksums', () => {
  it('matches a header with a known checksum (RFC 1071 example header, 0xb861)', () => {
    const h = Uint8Array.from([
      0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ]);
    expect(ipHeaderValid(h, 0, 20)).toBe(true);
    const z = Uint8Array.from(h);
    z[10] = 0;
    z[11] = 0;
    expect(~onesSum(z, 0, 20) & 0xffff).toBe(0xb861);
    expect(rfc1071(z)).toBe(0xb861);
  });

  it('sums odd lengths with a zero pad byte', () => {
    expect(onesSum(Uint8Array.from([0x01, 0x02, 0x03]), 0, 3)).toBe(0x0102 + 0x0300);
  });
});

describe('encapsulate: the outer header kernel ipip would write', () => {
  it('ICMP echo with DF: every outer byte', () => {
    const inner = icmpEcho();
    const buf = withHeadroom(inner);
    const len = encapsulate(buf, OUTER_HLEN, inner.length, NODE1, NODE2, 0x0102);
    expect(len).toBe(84);
    const expected = ipv4Header({
      totalLength: 104,
      id: 0x0102,
      flags: 0x4000,
      ttl: 63,
      proto: 4,
      src: '192.168.0.81',
      dst: '192.168.0.82',
    });
    expect([...buf.subarray(0, 20)]).toEqual(expected);
    expect(rfc1071(buf.subarray(0, 20))).toBe(0); // a valid header sums to 0xffff
    expect(buf.subarray(20)).toEqual(Buffer.from(inner)); // inner untouched, no Ethernet header
    expect(buf[9]).toBe(4); // proto IPIP (4)
  });

  it('copies TTL and only the DF bit (nopmtudisc), never MF or the offset', () => {
    for (const [flags, outerFlags] of [
      [0x4000, 0x4000],
      [0, 0],
      [0x2000 | 5, 0],
      [0x4000 | 0x2000, 0x4000],
    ] as const) {
      const inner = icmpEcho({ flags, ttl: 7 });
      const buf = withHeadroom(inner);
      encapsulate(buf, OUTER_HLEN, inner.length, NODE1, NODE2, 1);
      expect(buf.readUInt16BE(6)).toBe(outerFlags);
      expect(buf[8]).toBe(7);
      expect(ipHeaderValid(buf, 0, 20)).toBe(true);
    }
  });

  it('TOS carries only the inner ECN bits, CE sent as ECT(0) (INET_ECN_encapsulate)', () => {
    expect(outerTos(0xb8)).toBe(0); // DSCP EF, not-ECT
    expect(outerTos(0xba)).toBe(2); // ECT(0)
    expect(outerTos(0x01)).toBe(1); // ECT(1)
    expect(outerTos(0xbb)).toBe(2); // CE -> ECT(0)
    const inner = icmpEcho({ tos: 0xbb });
    const buf = withHeadroom(inner);
    encapsulate(buf, OUTER_HLEN, inner.length, NODE1, NODE2, 9);
    expect(buf[1]).toBe(2);
    expect(buf[OUTER_HLEN + 1]).toBe(0xbb);
  });

  it('refuses what is not a sane IPv4 packet', () => {
    const v6 = withHeadroom(Uint8Array.from([0x60, 0, 0, 0, ...new Array(36).fill(0)]));
    expect(encapsulate(v6, OUTER_HLEN, 40, NODE1, NODE2, 1)).toBe('notIpv4');
    const short = withHeadroom(icmpEcho().subarray(0, 19));
    expect(encapsulate(short, OUTER_HLEN, 19, NODE1, NODE2, 1)).toBe('malformed');
    const inner = icmpEcho();
    const truncated = withHeadroom(inner.subarray(0, 50)); // total length says 84
    expect(encapsulate(truncated, OUTER_HLEN, 50, NODE1, NODE2, 1)).toBe('malformed');
    const badIhl = withHeadroom(Uint8Array.from([0x44, ...inner.subarray(1)]));
    expect(encapsulate(badIhl, OUTER_HLEN, inner.length, NODE1, NODE2, 1)).toBe('malformed');
  });

  it('carries the IPv4 total length, not trailing bytes', () => {
    const inner = icmpEcho();
    const buf = withHeadroom(Uint8Array.from([...inner, 0xee, 0xee]));
    expect(encapsulate(buf, OUTER_HLEN, inner.length + 2, NODE1, NODE2, 1)).toBe(84);
    expect(buf.readUInt16BE(2)).toBe(104);
  });
});

/** An IPIP packet from `src` to `dst` around `inner`, as a peer's kernel sends it. */
function ipip(inner: Uint8Array, o: { src?: string; dst?: string; tos?: number; flags?: number; proto?: number } = {}): Buffer {
  return Buffer.from([
    ...ipv4Header({
      tos: o.tos,
      totalLength: 20 + inner.length,
      id: 7,
      flags: o.flags ?? 0x4000,
      ttl: 63,
      proto: o.proto ?? 4,
      src: o.src ?? '192.168.0.82',
      dst: o.dst ?? '192.168.0.81',
    }),
    ...inner,
  ]);
}

describe('decapsulate: protocol 4 from known peers to this node', () => {
  const d = new Decapsulated();

  it('accepts a peer packet and points at the inner packet', () => {
    const inner = icmpEcho({ src: '10.244.2.2', dst: '10.244.1.2' });
    const pkt = ipip(inner);
    expect(decapsulate(pkt, 0, pkt.length, NODE1, PEERS, 1480, d)).toBeUndefined();
    expect(d.innerOff).toBe(20);
    expect(d.innerLen).toBe(inner.length);
    expect(PEERS.peers[d.peer]!.node).toBe('node2');
    expect(d.outerLen).toBe(pkt.length);
    expect(pkt.subarray(d.innerOff, d.innerOff + d.innerLen)).toEqual(Buffer.from(inner));
    expect(d.csumPartial).toBe(false); // ICMP: nothing for the kernel to finish
  });

  it('drops and names what is not ours', () => {
    const inner = icmpEcho({ src: '10.244.9.9', dst: '10.244.1.2' });
    const check = (pkt: Buffer) => decapsulate(pkt, 0, pkt.length, NODE1, PEERS, 1480, d);
    expect(check(ipip(inner, { src: '192.168.0.1' }))).toBe('unknownSource');
    expect(check(ipip(inner, { dst: '192.168.0.99' }))).toBe('notLocal');
    expect(check(ipip(inner, { proto: 41 }))).toBe('malformed');
    expect(check(ipip(inner, { flags: 0x2000 }))).toBe('malformed'); // an outer fragment
    expect(check(ipip(inner).subarray(0, 30))).toBe('malformed');
    const lying = ipip(inner);
    lying.writeUInt16BE(200, 22); // inner total length beyond the packet
    expect(check(lying)).toBe('malformed');
    const notV4 = ipip(Uint8Array.from([0x60, ...inner.subarray(1)]));
    expect(check(notV4)).toBe('malformed');
  });

  it('applies RFC 6040 ECN like IP_ECN_decapsulate', () => {
    const check = (outerTos: number, innerTos: number) => {
      const pkt = ipip(icmpEcho({ tos: innerTos, src: '10.244.2.2', dst: '10.244.1.2' }), { tos: outerTos });
      const r = decapsulate(pkt, 0, pkt.length, NODE1, PEERS, 1480, d);
      return { r, tos: pkt[21], valid: ipHeaderValid(pkt, 20, 20) };
    };
    expect(check(3, 2)).toEqual({ r: undefined, tos: 3, valid: true }); // CE outside marks ECT inside CE, checksum fixed
    expect(check(3, 0xb9)).toEqual({ r: undefined, tos: 0xbb, valid: true });
    expect(check(3, 0).r).toBe('ecn'); // CE on a not-ECT packet: dropped
    expect(check(2, 0)).toEqual({ r: undefined, tos: 0, valid: true }); // ECT outside, not-ECT inside: unchanged
    expect(check(0, 3)).toEqual({ r: undefined, tos: 3, valid: true });
  });

  it('round-trips what encapsulate wrote', () => {
    const inner = icmpEcho({ src: '10.244.2.2', dst: '10.244.1.2' });
    const buf = withHeadroom(inner);
    const len = encapsulate(buf, OUTER_HLEN, inner.length, NODE2, NODE1, 5) as number;
    const node1Peers = new PeerTable([{ node: 'node2', address: '192.168.0.82', podCidr: '10.244.2.0/24' }]);
    expect(decapsulate(buf, 0, len + OUTER_HLEN, NODE1, node1Peers, 1480, d)).toBeUndefined();
    expect(buf.subarray(d.innerOff, d.innerOff + d.innerLen)).toEqual(Buffer.from(inner));
  });
});

/** A TCP segment 10.244.2.2:5201 > 10.244.1.2:40000 with `payload` bytes; checksum partial or full. */
function tcp(payload: number, partial: boolean): Uint8Array {
  const thl = 32; // with the timestamp option, as Linux sends
  const l4 = new Uint8Array(thl + payload);
  l4.set([
    0x14,
    0x51,
    0x9c,
    0x40,
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    1,
    (thl / 4) << 4,
    0x18,
    0xff,
    0xff,
    0,
    0,
    0,
    0,
    1,
    1,
    8,
    10,
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    2,
  ]);
  for (let i = thl; i < l4.length; i++) l4[i] = i & 255;
  const pseudo = [...ip('10.244.2.2'), ...ip('10.244.1.2'), 0, 6, l4.length >> 8, l4.length & 255];
  let csum: number;
  if (partial) {
    csum = ~rfc1071(Uint8Array.from(pseudo)) & 0xffff; // the folded pseudo-header sum, not complemented
  } else {
    const all = new Uint8Array(pseudo.length + l4.length);
    all.set(pseudo);
    all.set(l4, pseudo.length);
    csum = rfc1071(all);
  }
  l4[16] = csum >> 8;
  l4[17] = csum & 255;
  return Uint8Array.from([
    ...ipv4Header({ totalLength: 20 + l4.length, flags: 0x4000, ttl: 63, proto: 6, src: '10.244.2.2', dst: '10.244.1.2' }),
    ...l4,
  ]);
}

describe('decapsulate: checksum offload and super-packets from offloading peers', () => {
  const d = new Decapsulated();

  it('a complete TCP checksum is left for the kernel to verify', () => {
    const pkt = ipip(tcp(100, false));
    expect(decapsulate(pkt, 0, pkt.length, NODE1, PEERS, 1480, d)).toBeUndefined();
    expect(d.csumPartial).toBe(false);
    const v = Buffer.alloc(VNET_HLEN, 0xff);
    writeVnetHeader(v, 0, d);
    expect([...v]).toEqual(new Array(10).fill(0));
  });

  it('a partial TCP checksum (pseudo-header sum) is handed on as NEEDS_CSUM', () => {
    const pkt = ipip(tcp(100, true));
    expect(decapsulate(pkt, 0, pkt.length, NODE1, PEERS, 1480, d)).toBeUndefined();
    expect(d).toMatchObject({ csumPartial: true, csumStart: 20, csumOffset: 16, gsoSize: 0 });
    const v = Buffer.alloc(VNET_HLEN);
    writeVnetHeader(v, 0, d);
    expect([...v]).toEqual([1, 0, 0, 0, 0, 0, 20, 0, 16, 0]); // virtio_net_hdr, little-endian
  });

  it('a TCP super-packet larger than the tunnel MTU becomes a GSO_TCPV4 write cut at the MTU', () => {
    const pkt = ipip(tcp(20000, true));
    expect(decapsulate(pkt, 0, pkt.length, NODE1, PEERS, 1480, d)).toBeUndefined();
    expect(d).toMatchObject({ csumPartial: true, gsoSize: 1480 - 20 - 32, hdrLen: 52, innerLen: 20052 });
    const v = Buffer.alloc(VNET_HLEN);
    writeVnetHeader(v, 0, d);
    expect(v.readUInt8(1)).toBe(1); // VIRTIO_NET_HDR_GSO_TCPV4
    expect(v.readUInt16LE(2)).toBe(52);
    expect(v.readUInt16LE(4)).toBe(1428);
  });
});

describe('PeerTable', () => {
  it('finds the peer owning a pod subnet by longest prefix, and peers by address', () => {
    const t = new PeerTable([
      { node: 'wide', address: '192.168.0.90', podCidr: '10.244.0.0/16' },
      { node: 'node2', address: '192.168.0.82', podCidr: '10.244.2.0/24' },
      { node: 'node2', address: '192.168.0.82', podCidr: '10.245.0.0/24' },
    ]);
    const at = (a: string) => {
      const i = t.lookup(ipv4ToU32(a));
      return i < 0 ? undefined : t.peers[i]!.node;
    };
    expect(at('10.244.2.200')).toBe('node2');
    expect(at('10.244.3.1')).toBe('wide');
    expect(at('10.245.0.9')).toBe('node2');
    expect(at('10.246.0.1')).toBeUndefined();
    expect(t.peers).toHaveLength(2);
    expect(t.indexOfAddress(ipv4ToU32('192.168.0.82'))).toBe(1);
    expect(t.indexOfAddress(ipv4ToU32('192.168.0.1'))).toBe(-1);
    expect(new PeerTable([]).lookup(ipv4ToU32('10.0.0.1'))).toBe(-1);
  });

  it('reads the inner destination as an unsigned 32-bit address', () => {
    expect(innerDestination(icmpEcho(), 0)).toBe(ipv4ToU32('10.244.2.2'));
  });

  it('refuses a peer whose address or pod subnet is not IPv4', () => {
    expect(() => new PeerTable([{ node: 'x', address: '10.0.0', podCidr: '10.244.2.0/24' }])).toThrow(/not an IPv4 address/);
    expect(() => new PeerTable([{ node: 'x', address: '192.168.0.9', podCidr: '10.244.2.1/24' }])).toThrow(/host bits/);
  });
});

describe('counters', () => {
  it('sums drops except non-IPv4 noise, peers sorted by node', () => {
    const c = toUserspaceCounters(
      [
        { node: 'node2', address: '192.168.0.82', txPackets: 1, txBytes: 2, rxPackets: 3, rxBytes: 4 },
        {
          node: 'master',
          address: '192.168.0.80',
          txPackets: 0,
          txBytes: 0,
          rxPackets: 0,
          rxBytes: 0,
          pathMtu: 1400,
          fragNeededRelayed: 2,
        },
      ],
      {
        notIpv4: 5,
        noPeer: 1,
        unknownSource: 2,
        notLocal: 0,
        malformed: 1,
        ecn: 0,
        fragNeeded: 0,
        fragNeededForeign: 0,
        sendError: 0,
        tunWriteError: 0,
      },
    );
    expect(c.dropped).toBe(4);
    expect(c.drops.unknownSource).toBe(2);
    expect(c.peers.map((p) => p.node)).toEqual(['master', 'node2']);
    // A learned path MTU is shown while it holds; relayed ICMPs always (0 when none).
    expect(c.peers[0]).toMatchObject({ pathMtu: 1400, fragNeededRelayed: 2 });
    expect(c.peers[1]).not.toHaveProperty('pathMtu');
    expect(c.peers[1]!.fragNeededRelayed).toBe(0);
  });

  it("folds a stopped worker's counters into the totals, peer by peer", () => {
    const zero = zeroDrops(USERSPACE_DROP_REASONS);
    const peer = (address: string, n: number) => ({
      node: address,
      address,
      txPackets: n,
      txBytes: 10 * n,
      rxPackets: 2 * n,
      rxBytes: 20 * n,
      fragNeededRelayed: n,
    });
    const first = foldCounters(
      { peers: new Map(), drops: zero, offload: { tunReads: 0, txSegments: 0, tunWrites: 0, rxMerged: 0 } },
      { peers: [peer('a', 1)], drops: { ...zero, ecn: 2 }, offload: { tunReads: 1, txSegments: 2, tunWrites: 3, rxMerged: 4 } },
    );
    const both = foldCounters(first, {
      peers: [peer('a', 2), peer('b', 5)],
      drops: { ecn: 1, malformed: 1 },
      offload: { tunReads: 1, txSegments: 1, tunWrites: 1, rxMerged: 1 },
    });
    expect(both.peers.get('a')).toEqual(peer('a', 3));
    expect(both.peers.get('b')).toEqual(peer('b', 5));
    expect(both.drops).toEqual({ ...zero, ecn: 3, malformed: 1 });
    expect(both.offload).toEqual({ tunReads: 2, txSegments: 3, tunWrites: 4, rxMerged: 5 });
    expect(first.peers.get('a')).toEqual(peer('a', 1)); // the totals it was folded from are not changed
  });
});

describe('userspace datapath factory', () => {
  const host = node1Host;

  it('is the last datapath auto tries', () => {
    expect(DATAPATH_FACTORIES.map((f) => f.kind)).toEqual(['kernel', 'ebpf', 'userspace']);
  });

  it('probe says what is missing, side-effect free', async () => {
    const f = makeUserspaceDatapathFactory({ addonPath: '/nonexistent/podnet-tun.node', workerPath: __filename });
    expect(f.kind).toBe('userspace');
    expect(await f.probe(host)).toEqual({ outcome: 'failed', reason: expect.stringMatching(/native shim .*podnet-tun\.node is missing/) });
    const g = makeUserspaceDatapathFactory({ addonPath: __filename, workerPath: '/nonexistent/worker.js' });
    expect(await g.probe(host)).toEqual({ outcome: 'failed', reason: expect.stringMatching(/worker bundle .* is missing/) });
  });
});
