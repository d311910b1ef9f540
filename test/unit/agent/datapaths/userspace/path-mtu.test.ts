// The userspace datapath's path MTU, as kernel ipip (`nopmtudisc`) has it: which queued socket
// errors teach a path MTU, the kernel's learning rules (only lower, 552 floor, 10 minutes), which
// inner packets are too big (DF and inner + 20 > path MTU), where the inner packet sits in a
// quoted outer packet, and the inner ICMP "fragmentation needed" checked byte by byte with an
// independent RFC 1071 sum.
import {
  MIN_PATH_MTU,
  PATH_MTU_EXPIRES_MS,
  PathMtuTable,
  innerTooBig,
  quotedInner,
  relayVerdict,
  reportedPathMtu,
  writeFragNeeded,
  type RelayScope,
} from '../../../../../agent/datapaths/userspace/path-mtu';
import { cidrContainsAddress, requireCidr, requireIpv4 } from '../../../../../src/model/ipv4';
import { isAssignablePodAddressIn } from '../../../../../src/model/pod-address';
import { icmpEcho, ip, ipv4Header, rfc1071 } from './packets';

const NODE1 = requireIpv4('192.168.0.81');
const MASTER = requireIpv4('192.168.0.80');
const LINK = 1500;

/** A DF TCP segment 10.244.1.2:40000 > 10.244.0.2:5201 of `total` bytes (payload zeros). */
function tcpSegment(total: number, flags = 0x4000, src = '10.244.1.2', dst = '10.244.0.2'): Uint8Array {
  const tcp = [0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0];
  const b = new Uint8Array(total);
  b.set(ipv4Header({ totalLength: total, flags, ttl: 63, proto: 6, src, dst }), 0);
  b.set(tcp, 20);
  return b;
}

/** What a router quotes: the outer header node1 > master (DF) and the first `quote` bytes of the inner packet. */
function quoted(inner: Uint8Array, quote: number, src = '192.168.0.81'): Uint8Array {
  const outer = ipv4Header({ totalLength: inner.length + 20, flags: 0x4000, ttl: 63, proto: 4, src, dst: '192.168.0.80' });
  return Uint8Array.from([...outer, ...inner.subarray(0, quote)]);
}

describe('reportedPathMtu', () => {
  const icmp = { errno: 90, origin: 2, type: 3, code: 4 };
  it('takes the next-hop MTU of an ICMP fragmentation needed, and a local EMSGSIZE', () => {
    expect(reportedPathMtu({ ...icmp, info: 1400 })).toBe(1400);
    expect(reportedPathMtu({ errno: 90, origin: 1, type: 0, code: 0, info: 1500 })).toBe(1500);
  });
  it('ignores other errors and an ICMP without an MTU (pre-RFC 1191 routers)', () => {
    expect(reportedPathMtu({ ...icmp, info: 0 })).toBeUndefined();
    expect(reportedPathMtu({ errno: 113, origin: 2, type: 3, code: 1, info: 0 })).toBeUndefined(); // host unreachable
    expect(reportedPathMtu({ errno: 113, origin: 2, type: 11, code: 0, info: 1400 })).toBeUndefined(); // time exceeded
    expect(reportedPathMtu({ errno: 111, origin: 1, type: 0, code: 0, info: 1400 })).toBeUndefined();
  });
});

describe('PathMtuTable', () => {
  it('holds the link MTU until a router reports less, then the reported MTU, per peer', () => {
    const t = new PathMtuTable(LINK);
    expect(t.any).toBe(false);
    expect(t.get(MASTER, 0)).toBe(LINK);
    expect(t.learn(MASTER, 1400, 1000)).toBe(1400);
    expect(t.get(MASTER, 2000)).toBe(1400);
    expect(t.get(NODE1, 2000)).toBe(LINK);
    expect(t.entries(2000)).toEqual([[MASTER, 1400]]);
  });
  it('only lowers (a larger report is ignored while the lower one holds), never to the link MTU or above', () => {
    const t = new PathMtuTable(LINK);
    t.learn(MASTER, 1400, 0);
    expect(t.learn(MASTER, 1450, 1)).toBe(1400);
    expect(t.learn(MASTER, 1300, 2)).toBe(1300);
    const u = new PathMtuTable(LINK);
    expect(u.learn(MASTER, 1500, 0)).toBe(LINK);
    expect(u.learn(MASTER, 9000, 0)).toBe(LINK);
    expect(u.any).toBe(false);
  });
  it('raises a report below the floor to 552, as net.ipv4.route.min_pmtu', () => {
    expect(new PathMtuTable(LINK).learn(MASTER, 300, 0)).toBe(MIN_PATH_MTU);
  });
  it('expires after 10 minutes, counted from the last report, then the link MTU holds again', () => {
    const t = new PathMtuTable(LINK);
    t.learn(MASTER, 1400, 0);
    t.learn(MASTER, 1400, 60_000);
    expect(t.get(MASTER, PATH_MTU_EXPIRES_MS + 59_999)).toBe(1400);
    expect(t.get(MASTER, PATH_MTU_EXPIRES_MS + 60_000)).toBe(LINK);
    expect(t.any).toBe(false);
    expect(t.learn(MASTER, 1450, PATH_MTU_EXPIRES_MS + 60_001)).toBe(1450);
  });
});

describe('innerTooBig', () => {
  it('is true for a DF inner packet above the path MTU - 20, as tnl_update_pmtu', () => {
    expect(innerTooBig(tcpSegment(1480), 0, 1480, 1400)).toBe(true);
    expect(innerTooBig(tcpSegment(1381), 0, 1381, 1400)).toBe(true);
    expect(innerTooBig(tcpSegment(1380), 0, 1380, 1400)).toBe(false);
    expect(innerTooBig(tcpSegment(1480), 0, 1480, LINK)).toBe(false);
  });
  it('is false without DF: the outer packet has none either, and the kernel fragments it', () => {
    expect(innerTooBig(tcpSegment(1480, 0), 0, 1480, 1400)).toBe(false);
  });
});

describe('quotedInner', () => {
  const inner = tcpSegment(1480);
  it('finds the inner packet after the quoted outer header of a packet this node sent', () => {
    const q = quoted(inner, 548);
    expect(quotedInner(q, 0, q.length, NODE1)).toBe(20);
  });
  it('needs the inner header and 8 bytes quoted (RFC 792 routers may quote only 8 bytes of the outer payload)', () => {
    expect(quotedInner(quoted(inner, 28), 0, 48, NODE1)).toBe(20);
    expect(quotedInner(quoted(inner, 27), 0, 47, NODE1)).toBe(-1);
    expect(quotedInner(quoted(inner, 8), 0, 28, NODE1)).toBe(-1);
  });
  it('refuses a quote of a packet another address sent, or one that is not protocol 4', () => {
    const q = quoted(inner, 548, '192.168.0.82');
    expect(quotedInner(q, 0, q.length, NODE1)).toBe(-1);
    const tcp = Uint8Array.from(inner.subarray(0, 100));
    expect(quotedInner(tcp, 0, 100, requireIpv4('10.244.1.2'))).toBe(-1);
  });
});

describe('relayVerdict', () => {
  // node1 (10.244.1.0/24, tunnel 10.244.1.0) with peers master (0: 10.244.0.0/24) and node2 (1: 10.244.2.0/24).
  const pods = requireCidr('10.244.1.0/24');
  const cluster = requireCidr('10.244.0.0/16');
  const subnets = ['10.244.0.0/24', '10.244.2.0/24'].map(requireCidr);
  const scope: RelayScope = {
    local: NODE1,
    ownSource: (a) => a === requireIpv4('10.244.1.0') || isAssignablePodAddressIn(pods, a),
    overlay: (a) => cidrContainsAddress(cluster, a),
    peerOf: (a) => subnets.findIndex((c) => cidrContainsAddress(c, a)),
  };
  const ROUTER = requireIpv4('192.168.0.254');
  const MASTER_IX = 0;
  /** The verdict on a report from `sender` about a node1 > master packet wrapping `inner` (quoted 548 bytes), path MTU 1400. */
  const verdict = (inner: Uint8Array, sender = ROUTER, peer = MASTER_IX) => {
    const q = quoted(inner, 548);
    return relayVerdict(q, quotedInner(q, 0, q.length, NODE1), peer, 1400, sender, scope);
  };

  it("relays a router's report about a local pod's (or the tunnel address's) packet to that peer's subnet, when it is too big", () => {
    expect(verdict(tcpSegment(1452))).toBe('relay');
    expect(verdict(tcpSegment(1452, 0x4000, '10.244.1.254'))).toBe('relay');
    expect(verdict(tcpSegment(1452, 0x4000, '10.244.1.0'))).toBe('relay'); // the host itself, from flannel.ipip
  });
  it('says nothing when the quoted packet fits the path MTU or has no DF (the kernel fragments it)', () => {
    expect(verdict(tcpSegment(1380))).toBe('fits');
    expect(verdict(tcpSegment(1381))).toBe('relay');
    expect(verdict(tcpSegment(1452, 0))).toBe('fits');
  });
  it("refuses a quote whose inner source is none of this node's pods: made up, another node's pod, cni0, broadcast", () => {
    for (const src of ['192.168.0.1', '8.8.8.8', '10.244.2.2', '10.244.0.2', '10.244.1.1', '10.244.1.255'])
      expect([src, verdict(tcpSegment(1452, 0x4000, src))]).toEqual([src, 'foreign']);
  });
  it("refuses a quote whose inner destination is outside the peer's pod subnet (we would not have sent it there)", () => {
    expect(verdict(tcpSegment(1452, 0x4000, '10.244.1.2', '10.244.2.2'))).toBe('foreign');
    expect(verdict(tcpSegment(1452, 0x4000, '10.244.1.2', '192.168.0.1'))).toBe('foreign');
    expect(verdict(tcpSegment(1452), ROUTER, 1)).toBe('foreign'); // master's pod, but the report is about node2
  });
  it('refuses a report whose sender is an overlay address (a pod, never a router on the underlay)', () => {
    expect(verdict(tcpSegment(1452), requireIpv4('10.244.1.3'))).toBe('foreign');
    expect(verdict(tcpSegment(1452), requireIpv4('10.244.2.2'))).toBe('foreign');
  });
  it("trusts this host's own report (the kernel refused our send and quotes it) whatever the inner source", () => {
    expect(verdict(tcpSegment(1452, 0x4000, '203.0.113.9'), NODE1)).toBe('relay'); // forwarded from outside the cluster
    expect(verdict(tcpSegment(1380, 0x4000, '203.0.113.9'), NODE1)).toBe('fits');
  });
});

describe('writeFragNeeded', () => {
  it('answers from the inner destination to the inner source: type 3 code 4, the inner MTU, valid checksums, the quote', () => {
    const pkt = tcpSegment(1480);
    const out = new Uint8Array(600);
    const n = writeFragNeeded(out, 4, pkt, 0, pkt.length, 1380);
    expect(n).toBe(576); // icmp_send's cap: 20 + 8 + 548 quoted
    const icmp = out.subarray(4, 4 + n);
    expect(icmp[0]).toBe(0x45);
    expect(icmp[1]).toBe(0xc0);
    expect((icmp[2]! << 8) | icmp[3]!).toBe(576);
    expect((icmp[6]! << 8) | icmp[7]!).toBe(0); // no DF, no fragment
    expect(icmp[8]).toBe(64);
    expect(icmp[9]).toBe(1);
    expect([...icmp.subarray(12, 16)]).toEqual(ip('10.244.0.2')); // not local to the node: no martian on flannel.ipip
    expect([...icmp.subarray(16, 20)]).toEqual(ip('10.244.1.2'));
    expect(rfc1071(icmp.subarray(0, 20))).toBe(0);
    expect([icmp[20], icmp[21]]).toEqual([3, 4]);
    expect((icmp[26]! << 8) | icmp[27]!).toBe(1380);
    expect([...icmp.subarray(28)]).toEqual([...pkt.subarray(0, 548)]);
    expect(rfc1071(icmp.subarray(20))).toBe(0);
  });
  it('quotes what it has (a router quote), at least the header and 8 bytes', () => {
    const pkt = tcpSegment(1480);
    const out = new Uint8Array(600);
    expect(writeFragNeeded(out, 0, pkt, 0, 28, 1380)).toBe(56);
    expect(rfc1071(out.subarray(20, 56))).toBe(0);
    expect(writeFragNeeded(out, 0, pkt, 0, 27, 1380)).toBe(0);
  });
  it('quotes a short packet whole', () => {
    const echo = icmpEcho();
    const out = new Uint8Array(600);
    expect(writeFragNeeded(out, 0, echo, 0, echo.length, 1380)).toBe(28 + echo.length);
  });
  it('never answers an ICMP error, a fragment past the first, or a multicast or unspecified source (RFC 1122)', () => {
    const out = new Uint8Array(600);
    const err = Uint8Array.from(icmpEcho());
    err[20] = 3; // destination unreachable (the checksums do not matter here)
    expect(writeFragNeeded(out, 0, err, 0, err.length, 1380)).toBe(0);
    const frag = tcpSegment(1480, 0x4000 | 185);
    expect(writeFragNeeded(out, 0, frag, 0, frag.length, 1380)).toBe(0);
    expect(writeFragNeeded(out, 0, icmpEcho({ src: '0.0.0.0' }), 0, 84, 1380)).toBe(0);
    expect(writeFragNeeded(out, 0, icmpEcho({ src: '224.0.0.1' }), 0, 84, 1380)).toBe(0);
    expect(writeFragNeeded(out, 0, icmpEcho({ dst: '255.255.255.255' }), 0, 84, 1380)).toBe(0);
  });
});
