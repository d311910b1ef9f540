// The userspace datapath's packet policy, in TypeScript: what kernel ipip (`ttl inherit
// nopmtudisc`, tos 0) puts on the wire, and what it accepts off it. Pure functions over caller
// buffers (the worker builds headers in place, no allocation per packet) plus a peer table.
//
// Encapsulation (ip_tunnel_xmit + iptunnel_xmit):
//   version 4, IHL 5, no options; TOS = the inner ECN bits, CE sent as ECT(0)
//   (INET_ECN_encapsulate with tunnel tos 0); total length; ID counted up per peer (the kernel's
//   ip_select_ident keys its counter on (saddr, daddr, protocol), so receive-side GRO can merge
//   non-DF packets); DF copied from the inner packet (nopmtudisc sets none of its own); TTL copied
//   (ttl inherit); protocol 4; header checksum; source this node, destination the peer owning
//   the inner destination's pod subnet.
// Decapsulation (ipip_rcv + ip_tunnel_rcv):
//   outer IPv4 with a sane IHL and length, protocol 4, destination this node, source a known peer,
//   not a fragment (the kernel reassembles before a raw socket sees it); inner IPv4 with a sane
//   IHL and length; ECN per RFC 6040 (IP_ECN_decapsulate): outer CE marks an ECT inner packet
//   CE, and drops a not-ECT one.

import type { UserspaceDropReason } from '../../../src/model/drop-reasons';
import { prefixMask, requireCidr, requireIpv4 } from '../../../src/model/ipv4';

export const OUTER_HLEN = 20;
export const IPPROTO_IPIP = 4;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IP_DF = 0x4000;
const IP_MF = 0x2000;
const IP_OFFMASK = 0x1fff;
const ECN_MASK = 3;
const ECN_ECT0 = 2;
const ECN_CE = 3;

/** virtio_net_hdr, as the TUN device with IFF_VNET_HDR wants it before each packet (10 bytes). */
export const VNET_HLEN = 10;
export const VNET_F_NEEDS_CSUM = 1;
export const VNET_GSO_NONE = 0;
export const VNET_GSO_TCPV4 = 1;

/** Ones'-complement sum of 16-bit big-endian words, folded to 16 bits (not complemented). */
export function onesSum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  let s = initial;
  const end = off + (len & ~1);
  for (let i = off; i < end; i += 2) s += (buf[i]! << 8) | buf[i + 1]!;
  if (len & 1) s += buf[off + len - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** True if the IPv4 header at off verifies (sum including its checksum is 0xffff). */
export function ipHeaderValid(buf: Uint8Array, off: number, hlen: number): boolean {
  return onesSum(buf, off, hlen) === 0xffff;
}

/** INET_ECN_encapsulate(0, inner tos): the outer TOS. */
export function outerTos(innerTos: number): number {
  const ecn = innerTos & ECN_MASK;
  return ecn === ECN_CE ? ECN_ECT0 : ecn;
}

/** Big-endian 16- and 32-bit reads and writes at byte offsets (header fields). */
export function rd16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}
export function wr16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 255;
  b[o + 1] = v & 255;
}
export function rd32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
export function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 255;
  b[o + 1] = (v >>> 16) & 255;
  b[o + 2] = (v >>> 8) & 255;
  b[o + 3] = v & 255;
}

/** Inner IPv4 destination of the packet at off (the key for the peer lookup). */
export function innerDestination(buf: Uint8Array, off: number): number {
  return rd32(buf, off + 16);
}

/** Why a packet was not carried: the shared names (src/model/drop-reasons.ts). */
export type DropReason = UserspaceDropReason;

/**
 * Validates the inner packet at buf[off..off+len) and writes the outer header into
 * buf[off-20..off). Returns the inner length to carry (its IPv4 total length), or a DropReason.
 */
export function encapsulate(buf: Uint8Array, off: number, len: number, src: number, dst: number, id: number): number | DropReason {
  if (len < 1) return 'malformed';
  if (buf[off]! >>> 4 !== 4) return 'notIpv4';
  if (len < 20) return 'malformed';
  const ihl = (buf[off]! & 15) * 4;
  const tot = rd16(buf, off + 2);
  if (ihl < 20 || tot < ihl || tot > len || tot + OUTER_HLEN > 0xffff) return 'malformed';
  const o = off - OUTER_HLEN;
  buf[o] = 0x45;
  buf[o + 1] = outerTos(buf[off + 1]!);
  wr16(buf, o + 2, tot + OUTER_HLEN);
  wr16(buf, o + 4, id & 0xffff);
  wr16(buf, o + 6, rd16(buf, off + 6) & IP_DF);
  buf[o + 8] = buf[off + 8]!;
  buf[o + 9] = IPPROTO_IPIP;
  buf[o + 10] = 0;
  buf[o + 11] = 0;
  wr32(buf, o + 12, src);
  wr32(buf, o + 16, dst);
  wr16(buf, o + 10, ~onesSum(buf, o, OUTER_HLEN) & 0xffff);
  return tot;
}

/** What decapsulate() found; one instance is reused for every packet (no allocation). */
export class Decapsulated {
  /** Where the inner packet starts in the buffer, and its length. */
  innerOff = 0;
  innerLen = 0;
  /** Index of the sending peer in the PeerTable. */
  peer = -1;
  /** Outer length (what the peer's rx bytes count). */
  outerLen = 0;
  /** The inner L4 checksum holds only the pseudo-header sum (a sender's CHECKSUM_PARTIAL). */
  csumPartial = false;
  csumStart = 0;
  csumOffset = 0;
  /** TCP segment size to cut a super-packet at (0: none). */
  gsoSize = 0;
  /** IP header + TCP header length when gsoSize > 0. */
  hdrLen = 0;
}

/**
 * Validates a received protocol-4 packet at buf[off..off+len) (outer header included, as a raw
 * socket returns it) and, if it is ours, applies RFC 6040 ECN to the inner header in place.
 * `mtu` is the tunnel MTU: larger TCP packets (GSO super-packets from an offloading peer, which
 * cross veth underlays whole) are marked for the kernel to cut at mtu - headers.
 */
export function decapsulate(
  buf: Uint8Array,
  off: number,
  len: number,
  local: number,
  peers: PeerTable,
  mtu: number,
  out: Decapsulated,
): DropReason | undefined {
  if (len < OUTER_HLEN + 20 || buf[off]! >>> 4 !== 4) return 'malformed';
  const ohl = (buf[off]! & 15) * 4;
  const otot = rd16(buf, off + 2);
  if (ohl < 20 || otot < ohl + 20 || otot > len) return 'malformed';
  if (buf[off + 9] !== IPPROTO_IPIP) return 'malformed';
  if (rd32(buf, off + 16) !== local) return 'notLocal';
  const peer = peers.indexOfAddress(rd32(buf, off + 12));
  if (peer < 0) return 'unknownSource';
  if (rd16(buf, off + 6) & (IP_MF | IP_OFFMASK)) return 'malformed';
  const i = off + ohl;
  const avail = otot - ohl;
  if (buf[i]! >>> 4 !== 4) return 'malformed';
  const ihl = (buf[i]! & 15) * 4;
  const itot = rd16(buf, i + 2);
  if (ihl < 20 || itot < ihl || itot > avail) return 'malformed';

  // RFC 6040 decapsulation, as IP_ECN_decapsulate.
  const oecn = buf[off + 1]! & ECN_MASK;
  const iecn = buf[i + 1]! & ECN_MASK;
  if (oecn === ECN_CE && iecn !== ECN_CE) {
    if (iecn === 0) return 'ecn';
    buf[i + 1] = buf[i + 1]! | ECN_CE;
    buf[i + 10] = 0;
    buf[i + 11] = 0;
    wr16(buf, i + 10, ~onesSum(buf, i, ihl) & 0xffff);
  }

  out.innerOff = i;
  out.innerLen = itot;
  out.peer = peer;
  out.outerLen = otot;
  out.csumPartial = false;
  out.csumStart = 0;
  out.csumOffset = 0;
  out.gsoSize = 0;
  out.hdrLen = 0;
  const proto = buf[i + 9];
  const frag = rd16(buf, i + 6) & (IP_MF | IP_OFFMASK);
  if (frag === 0 && (proto === IPPROTO_TCP || proto === IPPROTO_UDP)) {
    const coff = proto === IPPROTO_TCP ? 16 : 6;
    const l4len = itot - ihl;
    if (l4len >= coff + 2) {
      // A sender that offloads checksums leaves the pseudo-header sum in the field; over a
      // veth underlay it arrives like that. Marking it NEEDS_CSUM is right either way: if the
      // field equals the pseudo-header sum, the checksum the kernel computes is the true one
      // even when the field was already complete.
      const pseudo = onesSum(buf, i + 12, 8, proto + l4len);
      const field = rd16(buf, i + ihl + coff);
      if (field === pseudo && !(proto === IPPROTO_UDP && field === 0)) {
        out.csumPartial = true;
        out.csumStart = ihl;
        out.csumOffset = coff;
      }
      if (itot > mtu && proto === IPPROTO_TCP && out.csumPartial && l4len >= 20) {
        const thl = (buf[i + ihl + 12]! >>> 4) * 4;
        if (thl >= 20 && thl <= l4len && mtu > ihl + thl) {
          out.gsoSize = mtu - ihl - thl;
          out.hdrLen = ihl + thl;
        }
      }
    }
  }
  return undefined;
}

/** Writes the virtio_net_hdr (little-endian, the TUN default on x86/arm) for `d` at buf[off..off+10). */
export function writeVnetHeader(buf: Uint8Array, off: number, d: Decapsulated | undefined): void {
  buf.fill(0, off, off + VNET_HLEN);
  if (!d || !d.csumPartial) return;
  buf[off] = VNET_F_NEEDS_CSUM;
  if (d.gsoSize > 0) {
    buf[off + 1] = VNET_GSO_TCPV4;
    buf[off + 2] = d.hdrLen & 255;
    buf[off + 3] = d.hdrLen >>> 8;
    buf[off + 4] = d.gsoSize & 255;
    buf[off + 5] = d.gsoSize >>> 8;
  }
  buf[off + 6] = d.csumStart & 255;
  buf[off + 7] = d.csumStart >>> 8;
  buf[off + 8] = d.csumOffset & 255;
  buf[off + 9] = d.csumOffset >>> 8;
}

export interface PeerSpec {
  readonly node: string;
  readonly address: string;
  readonly podCidr: string;
}

export interface PeerEntry {
  readonly node: string;
  readonly address: string;
  readonly addr: number;
  readonly podCidr: string;
}

/**
 * Peers by pod subnet (longest prefix match) and by underlay address. Lookups are one Map
 * probe per distinct prefix length (normally one: every node gets the same subnet length).
 */
export class PeerTable {
  readonly peers: readonly PeerEntry[];
  private readonly byLen: { len: number; mask: number; map: Map<number, number> }[];
  private readonly byAddr: Map<number, number>;

  constructor(specs: readonly PeerSpec[]) {
    const peers: PeerEntry[] = [];
    const byAddr = new Map<number, number>();
    const lens = new Map<number, Map<number, number>>();
    for (const s of specs) {
      const addr = requireIpv4(s.address);
      let idx = byAddr.get(addr);
      if (idx === undefined) {
        idx = peers.length;
        peers.push({ node: s.node, address: s.address, addr, podCidr: s.podCidr });
        byAddr.set(addr, idx);
      }
      const { base, length: len } = requireCidr(s.podCidr);
      let m = lens.get(len);
      if (!m) lens.set(len, (m = new Map()));
      m.set(base, idx);
    }
    this.peers = peers;
    this.byAddr = byAddr;
    this.byLen = [...lens.entries()].sort(([a], [b]) => b - a).map(([len, map]) => ({ len, mask: prefixMask(len), map }));
  }

  /** The peer owning `dst`'s pod subnet (index into peers), or -1. */
  lookup(dst: number): number {
    for (const l of this.byLen) {
      const i = l.map.get((dst & l.mask) >>> 0);
      if (i !== undefined) return i;
    }
    return -1;
  }

  /** The peer whose underlay address is `addr`, or -1. */
  indexOfAddress(addr: number): number {
    return this.byAddr.get(addr) ?? -1;
  }
}
