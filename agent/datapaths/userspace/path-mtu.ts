// Path MTU for the userspace datapath, as kernel ipip (`nopmtudisc`: DF copied from the inner
// packet) has it: a router with a smaller MTU between two nodes drops an outer DF packet and
// answers "fragmentation needed" (ICMP type 3 code 4, next-hop MTU) to this node. Kernel ipip
// (ipip_err, tnl_update_pmtu) learns that path MTU per peer for 10 minutes and answers every DF
// inner packet bigger than the path MTU - 20 with an inner "fragmentation needed" (mtu = path MTU
// - 20) to the inner sender, whose TCP then lowers its segment size. Without it nothing tells the
// pod, and its TCP stalls on resends that never pass.
//
// Here: the raw socket has IP_RECVERR, so the kernel queues the router's ICMP with the quoted
// outer packet (raw_err -> ip_icmp_error; for a HDRINCL socket the payload starts at the quoted
// outer IP header). The worker reads it (shim.recvErrors), learns the peer's path MTU
// (PathMtuTable), answers the quoted inner packet when it is one this node could have sent to that
// peer (relayVerdict: anyone can forge the quote), and from then on answers oversized DF inner
// packets to that peer instead of sending them (innerTooBig, writeFragNeeded). Non-DF inner
// packets still go: their outer header has no DF either, and the kernel fragments them to the
// path MTU it learned from the same ICMP (ipv4_sk_update_pmtu), as kernel ipip does.
// What the kernel does with this socket's sends (checked on the lab, kernel 6.18): raw_send_hdrinc
// checks only the device MTU, but ip_finish_output then holds a DF packet against the route's
// path MTU (the socket's pmtudisc is IP_PMTUDISC_WANT), refuses it with EMSGSIZE and sends an ICMP
// "fragmentation needed" from this host's own address to itself, which lands in the same error
// queue (quoting 548 bytes from the outer header on). So between the kernel learning a path MTU
// and the worker reading the error, sends fail; they are answered from the error queue as well.
// Pure functions over caller buffers and a table with an injected clock; unit-tested.

import { IPPROTO_IPIP, OUTER_HLEN, onesSum, rd16, rd32, wr16 } from './ipip-codec';

/** The kernel's floor for a learned path MTU (net.ipv4.route.min_pmtu, default 552). */
export const MIN_PATH_MTU = 552;
/** How long a learned path MTU holds (net.ipv4.route.mtu_expires, default 600 s), in ms. */
export const PATH_MTU_EXPIRES_MS = 600_000;
/** The most an ICMP error carries, as icmp_send: 576 bytes in all (RFC 1812 4.3.2.3). */
const ICMP_ERROR_MAX = 576;
const ICMP_HLEN = 8;
const IP_HLEN = 20;
const IPPROTO_ICMP = 1;
const ICMP_DEST_UNREACH = 3;
const ICMP_FRAG_NEEDED = 4;
const IP_DF = 0x4000;
const IP_OFFMASK = 0x1fff;
/** IPTOS_PREC_INTERNETCONTROL: the TOS icmp_send gives errors. */
const TOS_INTERNETCONTROL = 0xc0;
const SO_EE_ORIGIN_LOCAL = 1;
const SO_EE_ORIGIN_ICMP = 2;
const EMSGSIZE = 90;

/** One entry of the raw socket's error queue (sock_extended_err), as shim.recvErrors reads it. */
export interface QueuedError {
  readonly errno: number;
  /** SO_EE_ORIGIN_*: 1 local, 2 ICMP. */
  readonly origin: number;
  readonly type: number;
  readonly code: number;
  /** ee_info: for "fragmentation needed" the next-hop MTU (0 from a router too old to say). */
  readonly info: number;
}

/**
 * The path MTU an error reports (bytes, outer packet), or undefined when it is no "packet too
 * big": an ICMP type 3 code 4 from a router (or from this host, when the kernel refuses a DF send
 * above a path MTU it learned), or a local EMSGSIZE (a send above the device MTU). An ICMP
 * without an MTU (0, pre-RFC 1191 routers) says nothing usable: the kernel ignores it too.
 */
export function reportedPathMtu(e: QueuedError): number | undefined {
  const tooBig =
    (e.origin === SO_EE_ORIGIN_ICMP && e.type === ICMP_DEST_UNREACH && e.code === ICMP_FRAG_NEEDED) ||
    (e.origin === SO_EE_ORIGIN_LOCAL && e.errno === EMSGSIZE);
  return tooBig && e.info > 0 ? e.info : undefined;
}

/**
 * Learned path MTUs by peer (host-order IPv4 underlay address), with the kernel's rules
 * (__ip_rt_update_pmtu): a report only lowers the path MTU below the link's, is raised to the
 * 552-byte floor, and holds for 10 minutes from the last report of the same or a lower value;
 * then the link MTU holds again and the next oversized DF packet finds out anew. `now` is ms.
 */
export class PathMtuTable {
  private readonly byPeer = new Map<number, { mtu: number; until: number }>();

  constructor(
    /** The underlay MTU (bytes): what holds when nothing was learned. */
    private readonly linkMtu: number,
    private readonly expiresMs = PATH_MTU_EXPIRES_MS,
  ) {}

  /** Records a reported path MTU towards `peer`; returns the path MTU now in force. */
  learn(peer: number, reported: number, now: number): number {
    const mtu = Math.max(MIN_PATH_MTU, reported);
    const current = this.get(peer, now);
    if (mtu >= this.linkMtu || mtu > current) return current;
    this.byPeer.set(peer, { mtu, until: now + this.expiresMs });
    return mtu;
  }

  /** The path MTU towards `peer` (the link MTU when none was learned or it expired). */
  get(peer: number, now: number): number {
    const e = this.byPeer.get(peer);
    if (!e) return this.linkMtu;
    if (now >= e.until) {
      this.byPeer.delete(peer);
      return this.linkMtu;
    }
    return e.mtu;
  }

  /** True when some peer has a learned path MTU (the per-packet check is skipped otherwise). */
  get any(): boolean {
    return this.byPeer.size > 0;
  }

  /** Peers with a learned path MTU in force: [peer, mtu] (expired ones are dropped). */
  entries(now: number): [number, number][] {
    const out: [number, number][] = [];
    for (const peer of [...this.byPeer.keys()]) {
      const mtu = this.get(peer, now);
      if (mtu < this.linkMtu) out.push([peer, mtu]);
    }
    return out;
  }
}

/**
 * True if the inner IPv4 packet at buf[off..off+len) has DF and, with the 20-byte outer header,
 * exceeds `pathMtu`: kernel ipip's test in tnl_update_pmtu (mtu = dst_mtu - 20 < packet size).
 */
export function innerTooBig(buf: Uint8Array, off: number, len: number, pathMtu: number): boolean {
  return len + OUTER_HLEN > pathMtu && (rd16(buf, off + 6) & IP_DF) !== 0;
}

/**
 * Where the inner packet starts in an error-queue payload (the quoted outer packet, from its IP
 * header on), or -1 when it is not a protocol-4 packet this node (`local`) sent, or quotes less
 * than the inner header + 8 bytes (what an ICMP answer must quote; RFC 792 routers may quote
 * only 8 bytes past the outer header: then the path MTU is still learned, and the sender's
 * resend is answered instead).
 */
export function quotedInner(buf: Uint8Array, off: number, len: number, local: number): number {
  if (len < IP_HLEN || buf[off]! >>> 4 !== 4 || buf[off + 9] !== IPPROTO_IPIP) return -1;
  const ohl = (buf[off]! & 15) * 4;
  if (ohl < IP_HLEN || rd32(buf, off + 12) !== local) return -1;
  const i = off + ohl;
  if (len - ohl < IP_HLEN || buf[i]! >>> 4 !== 4) return -1;
  const ihl = (buf[i]! & 15) * 4;
  return ihl >= IP_HLEN && len - ohl >= ihl + 8 ? i : -1;
}

/** What relayVerdict judges a report's quoted packet by. Addresses are host-order IPv4. */
export interface RelayScope {
  /** This node's underlay address: the ICMP's sender when this host's own kernel refused the send. */
  readonly local: number;
  /** True for an inner source this node's own packets carry: a pod address IPAM could have given here, or the tunnel address. */
  readonly ownSource: (addr: number) => boolean;
  /** True for an overlay address (inside the cluster CIDR): no router on the underlay has one. */
  readonly overlay: (addr: number) => boolean;
  /** The index of the peer whose pod subnet holds `addr` (-1: none), as the send path picks it (PeerTable.lookup). */
  readonly peerOf: (addr: number) => number;
}

/** relay: answer the quoted packet; fits: nothing to tell (no DF, or within the path MTU); foreign: not a packet of ours. */
export type RelayVerdict = 'relay' | 'fits' | 'foreign';

/**
 * Whether a "fragmentation needed" about a packet to `peer` (its index), from `sender`, may be
 * relayed: answered with an inner ICMP to the quoted inner packet at buf[inner..) (quotedInner),
 * once `pathMtu` (the learned outer path MTU) is in force.
 *
 * Learning takes any sender, as the kernel does (ipv4_sk_update_pmtu). Relaying is more: the
 * answer's addresses come from the quote, and the host forwards what the worker writes into the
 * TUN. Any host on the underlay can send an ICMP that quotes this node's outer header (its
 * address and a peer's are no secret) around a made-up inner packet; relayed as it stands, the
 * node would send an ICMP from any address to any address, past the non-peer drop. Kernel ipip
 * never relays (it answers the sender's next oversized packet, as the send path here does). So a
 * report is relayed only when its quote is a packet this node could have sent to that peer: the
 * inner source one of its own pods or its tunnel address, the inner destination in the peer's
 * pod subnet (where the send path would have sent it); and not when the sender is an overlay
 * address (a pod speaking, never a router on the underlay). A report from this host itself is
 * trusted as it stands: the kernel refused our own send and quotes it (an ICMP from a local
 * address arriving from outside is a martian the kernel drops before it gets here), and the send
 * path answers any DF inner packet too big for a learned path MTU, whatever its source.
 * Reads 20 bytes at buf[inner..); quotedInner checked there are 28.
 */
export function relayVerdict(
  buf: Uint8Array,
  inner: number,
  peer: number,
  pathMtu: number,
  sender: number,
  scope: RelayScope,
): RelayVerdict {
  if (sender !== scope.local) {
    if (scope.overlay(sender)) return 'foreign';
    if (!scope.ownSource(rd32(buf, inner + 12)) || scope.peerOf(rd32(buf, inner + 16)) !== peer) return 'foreign';
  }
  return innerTooBig(buf, inner, rd16(buf, inner + 2), pathMtu) ? 'relay' : 'fits';
}

/**
 * Writes at out[o..) the inner ICMP "fragmentation needed" (type 3 code 4, next-hop MTU
 * `innerMtu`) answering the IPv4 packet at pkt[p..p+avail) (avail: the bytes at hand, >= its
 * header + 8), as icmp_send would: IP header with TOS 0xc0, TTL 64, no DF, valid checksums,
 * quoting the packet's first bytes up to 576 in all. Returns the ICMP packet's length, or 0 when
 * RFC 1122 forbids an answer (a fragment past the first, an ICMP error, a multicast, broadcast or
 * unspecified source) or `avail` is too short. `out` needs 576 bytes from o.
 *
 * Source address: the quoted packet's destination (the pod on the other node), not an address
 * of this host as kernel ipip uses. The answer goes into the TUN and reaches the kernel as if
 * received on flannel.ipip: a source local to the host would be dropped there as a martian, and
 * rp_filter wants a source whose route leads back out flannel.ipip, which the remote pod's
 * subnet does. The pod's TCP finds its socket by the quoted header, not the ICMP's source, and
 * conntrack relates the error by the quoted tuple and its destination (the pod).
 */
export function writeFragNeeded(out: Uint8Array, o: number, pkt: Uint8Array, p: number, avail: number, innerMtu: number): number {
  if (avail < IP_HLEN || pkt[p]! >>> 4 !== 4) return 0;
  const ihl = (pkt[p]! & 15) * 4;
  if (ihl < IP_HLEN || avail < ihl + 8) return 0;
  if (rd16(pkt, p + 6) & IP_OFFMASK) return 0;
  const src = rd32(pkt, p + 12);
  const dst = rd32(pkt, p + 16);
  if (src === 0 || src === 0xffffffff || src >>> 28 === 0xe || dst === 0xffffffff || dst >>> 28 === 0xe) return 0;
  // An ICMP error is never answered with one (echo and the like are).
  if (pkt[p + 9] === IPPROTO_ICMP) {
    const t = pkt[p + ihl]!;
    if (t === 3 || t === 4 || t === 5 || t === 11 || t === 12) return 0;
  }
  const quote = Math.min(avail, rd16(pkt, p + 2), ICMP_ERROR_MAX - IP_HLEN - ICMP_HLEN);
  const total = IP_HLEN + ICMP_HLEN + quote;
  out[o] = 0x45;
  out[o + 1] = TOS_INTERNETCONTROL;
  wr16(out, o + 2, total);
  wr16(out, o + 4, 0);
  wr16(out, o + 6, 0);
  out[o + 8] = 64;
  out[o + 9] = IPPROTO_ICMP;
  wr16(out, o + 10, 0);
  out.set(pkt.subarray(p + 16, p + 20), o + 12); // from the packet's destination
  out.set(pkt.subarray(p + 12, p + 16), o + 16); // to its source
  wr16(out, o + 10, ~onesSum(out, o, IP_HLEN) & 0xffff);
  const c = o + IP_HLEN;
  out[c] = ICMP_DEST_UNREACH;
  out[c + 1] = ICMP_FRAG_NEEDED;
  wr16(out, c + 2, 0);
  wr16(out, c + 4, 0);
  wr16(out, c + 6, innerMtu);
  out.set(pkt.subarray(p, p + quote), c + ICMP_HLEN);
  wr16(out, c + 2, ~onesSum(out, c, ICMP_HLEN + quote) & 0xffff);
  return total;
}
