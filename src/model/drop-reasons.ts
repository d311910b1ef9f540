// Why a datapath did not carry a packet: one list of names for the eBPF program, its loader and
// the userspace datapath. The names are stable: `podnet-agent status --json` prints them under
// counters.drops. The eBPF list mirrors PN_DROP_REASONS in
// agent/datapaths/ebpf/bpf/podnet-ipip.h (its pn_drops index order); test/unit/model/drop-reasons.test.ts
// reads that header and fails when the two differ.

/** Every drop reason any datapath reports. */
export type DropReason =
  | 'noPeer' // egress: no peer owns the inner destination's pod subnet
  | 'unknownSource' // ingress: protocol 4 from an address that is no peer
  | 'malformed' // a bad outer or inner header, length, or an outer fragment
  | 'notIpv4' // egress: not IPv4 on the tunnel device (IPv6 router solicitations and the like; not traffic)
  | 'error' // eBPF: a helper failed (adjust_room, store, change_head)
  | 'unconfigured' // eBPF: pn_config not written yet
  | 'ecn' // ingress: outer CE on a not-ECT inner packet (RFC 6040)
  | 'fragNeeded' // egress: a DF inner packet too big for the peer's learned path MTU (minus 20), not sent; its sender got an ICMP "fragmentation needed", as kernel ipip sends
  | 'notLocal' // userspace: protocol 4 not addressed to this node (the kernel filters it for eBPF)
  | 'fragNeededForeign' // ingress, both datapaths: an ICMP "fragmentation needed" quoting a packet this node did not send to that peer (a made-up inner packet: inner source none of its pods nor its own address, inner destination outside the peer's pod subnet, or an overlay sender); its path MTU is learned, nothing is relayed
  | 'sendError' // userspace: the raw socket refused the packet
  | 'tunWriteError'; // userspace: the TUN device refused the packet

/** The eBPF program's reasons in index order (PN_DROP_REASONS in podnet-ipip.h: pn_drops, then pn_drops_ext). */
export const BPF_DROP_REASONS = [
  'noPeer',
  'unknownSource',
  'malformed',
  'notIpv4',
  'error',
  'unconfigured',
  'ecn',
  'fragNeeded',
  'fragNeededForeign',
] as const satisfies readonly DropReason[];
export type BpfDropReason = (typeof BPF_DROP_REASONS)[number];

/** The userspace datapath's reasons (what ipip-codec.ts and the packet worker return). */
export const USERSPACE_DROP_REASONS = [
  'notIpv4',
  'noPeer',
  'unknownSource',
  'notLocal',
  'malformed',
  'ecn',
  'fragNeeded',
  'fragNeededForeign',
  'sendError',
  'tunWriteError',
] as const satisfies readonly DropReason[];
export type UserspaceDropReason = (typeof USERSPACE_DROP_REASONS)[number];

/**
 * The `dropped` total of DatapathCounters: every reason but notIpv4, which counts what the tunnel
 * device itself emits (not traffic). The same rule for every datapath.
 */
export function droppedTotal(drops: Readonly<Partial<Record<DropReason, number>>>): number {
  let total = 0;
  for (const [reason, n] of Object.entries(drops) as [DropReason, number | undefined][]) if (reason !== 'notIpv4') total += n ?? 0;
  return total;
}

/** Zero for each of `reasons`, to start counting from. */
export function zeroDrops<R extends DropReason>(reasons: readonly R[]): Record<R, number> {
  return Object.fromEntries(reasons.map((r) => [r, 0])) as Record<R, number>;
}
