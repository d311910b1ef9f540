// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * podnet eBPF datapath: puts on the wire exactly what kernel `ipip ttl inherit nopmtudisc`
 * puts there, on kernels without the ipip module.
 *
 *   pn_tun_egress        tc clsact egress of flannel.ipip (a TUN device nobody reads; without
 *                        this program the TUN drops, so the datapath fails closed).
 *                        Inner IPv4 -> outer IPv4 (proto 4, src = this node, dst = the peer
 *                        owning the inner destination, TTL/DF copied, TOS = inner ECN with CE
 *                        sent as ECT(0)) -> Ethernet header -> bpf_redirect_neigh(underlay).
 *                        A DF packet above the peer's learned path MTU - 20 is answered with
 *                        an ICMP "fragmentation needed" to its sender instead, as kernel ipip.
 *   pn_underlay_ingress  tc clsact ingress of the underlay (eth0). Protocol 4 to this node from
 *                        a known peer is decapsulated; from anyone else it is dropped and
 *                        counted. Everything else passes untouched. Decapsulated packets for a
 *                        local pod whose source lies in the sending peer's pod subnet go straight
 *                        into the pod (bpf_redirect_peer); the rest enter the stack on
 *                        flannel.ipip, as if the kernel ipip device received them.
 *                        An ICMP "fragmentation needed" (type 3 code 4) to this node about its
 *                        protocol 4 to a peer teaches that peer's path MTU (pn_pmtu) and, when
 *                        it quotes the inner header + 8 bytes, is relayed to the inner sender
 *                        as an inner "fragmentation needed" with mtu = path MTU - 20 (what
 *                        kernel ipip tells the inner sender once it learned the path MTU).
 *
 * Build: clang -O2 -g -target bpf (BTF is emitted by -g). GPL: bpf_redirect_neigh/peer are
 * available to any program type, but the license keeps all helpers open to future changes.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "podnet-ipip.h"

/* Debian 12's linux-libc-dev (6.1) predates these flags. */
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#endif

#define PN_IP_DF 0x4000
#define PN_IP_MF 0x2000
#define PN_IP_OFFSET 0x1fff
#define PN_ETH_HLEN 14
#define PN_IP_HLEN 20

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* All maps are pinned by name under the loader's --pin-dir, so an agent restart keeps them. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct pn_lpm_key);
	__type(value, struct pn_peer);
	__uint(max_entries, PN_MAX_PEERS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_peers SEC(".maps");

/* Peer underlay IPv4 -> counter index. The set of addresses allowed to send us protocol 4. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, PN_MAX_PEERS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_peer_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct pn_pod);
	__uint(max_entries, PN_MAX_PODS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_pods SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct pn_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct pn_peer_counters);
	__uint(max_entries, PN_MAX_PEERS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, PN_DROP_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_drops SEC(".maps");

/* Drop reasons PN_DROP_MAX and on (pn_drops is full; its size is pinned). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, PN_DROP_EXT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_drops_ext SEC(".maps");

/* Peer underlay IPv4 -> what an ICMP "fragmentation needed" taught us about the path to it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct pn_pmtu);
	__uint(max_entries, PN_MAX_PEERS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pn_pmtu SEC(".maps");

static __always_inline void count_drop(__u32 reason)
{
	__u32 ext = reason - PN_DROP_MAX;
	__u64 *c = reason < PN_DROP_MAX ? bpf_map_lookup_elem(&pn_drops, &reason) : bpf_map_lookup_elem(&pn_drops_ext, &ext);

	if (c)
		*c += 1; /* per-CPU slot: no atomic needed */
}

static __always_inline int drop(__u32 reason)
{
	count_drop(reason);
	return TC_ACT_SHOT;
}

/* Wire segments of a GSO super-packet count as packets, like the kernel device counters. */
static __always_inline __u64 wire_packets(struct __sk_buff *skb)
{
	return skb->gso_segs > 1 ? skb->gso_segs : 1;
}

static __always_inline __u16 ip_checksum(const struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < PN_IP_HLEN / 2; i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* ICMP's header as a "fragmentation needed" uses it (RFC 1191). */
struct pn_icmp {
	__u8 type;
	__u8 code;
	__u16 checksum;
	__u16 unused;
	__u16 mtu;
};
#define PN_ICMP_DEST_UNREACH 3
#define PN_ICMP_FRAG_NEEDED 4
#define PN_IPTOS_PREC_INTERNETCONTROL 0xc0

/* ICMP types that are errors: never answered with another (RFC 1122 3.2.2). */
static __always_inline int icmp_is_error(__u8 type)
{
	return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

/* The longest packet `skb` (inner IPv4 header `ip`, at offset 0) puts on the wire: itself, or
 * for a GSO super-packet each segment (headers + gso_size; TCP's header read, UDP's 8 bytes). */
static __always_inline __u32 wire_len(struct __sk_buff *skb, const struct iphdr *ip)
{
	__u32 l4 = 8;
	__u8 doff;

	if (!skb->gso_size)
		return skb->len;
	if (ip->protocol == IPPROTO_TCP) {
		if (bpf_skb_load_bytes(skb, ip->ihl * 4 + 12, &doff, 1) < 0)
			return skb->len;
		l4 = (doff >> 4) * 4;
	}
	return ip->ihl * 4 + l4 + skb->gso_size;
}

/* Bytes of a too-big packet its ICMP quotes: ICMP header + quote = 512, what one bpf_csum_diff
 * sums, within the 576 bytes icmp_send keeps to; a too-big packet is always longer (> 532). */
#define PN_ICMP_QUOTE 504

/*
 * Kernel ipip's answer to a DF inner packet above the peer's path MTU - 20 (tnl_update_pmtu:
 * icmp_ndo_send, then the packet is dropped): the packet on the tunnel's egress (`inner` at
 * offset 0) becomes the ICMP "fragmentation needed" (next-hop MTU `mtu`) to its sender, quoting
 * its first PN_ICMP_QUOTE bytes, and enters the stack on flannel.ipip's ingress, which routes it
 * to the sender (a local pod, or this node). Source: the inner destination, as in frag_needed().
 * Counted as drop reason fragNeeded, with or without the ICMP (none about an ICMP error or a
 * non-first fragment).
 * A TCP packet the sender's stack left CHECKSUM_PARTIAL (TSO/GSO, or checksum offload) still holds
 * the pseudo-header's partial sum in its TCP checksum field, which this quote copies as it is
 * (review finding 9): harmless, since the sender on the cni0/veth or local path matches the quote
 * by addresses, ports and sequence number, never by the quoted checksum (icmp_unreach, tcp_v4_err).
 */
static __always_inline int too_big(struct __sk_buff *skb, const struct pn_config *cfg, const struct iphdr *inner, __u32 mtu)
{
	struct {
		struct iphdr ip;
		struct pn_icmp icmp;
	} new;
	__u8 chunk[PN_ICMP_QUOTE / 2];
	__u32 sum = 0;
	__u8 type;

	if ((inner->frag_off & bpf_htons(PN_IP_OFFSET)) || !cfg->tunnel_ifindex)
		return drop(PN_DROP_FRAG_NEEDED);
	if (inner->protocol == IPPROTO_ICMP &&
	    (bpf_skb_load_bytes(skb, inner->ihl * 4, &type, 1) < 0 || icmp_is_error(type)))
		return drop(PN_DROP_FRAG_NEEDED);
	/* Cut to the quote (a GSO packet stops being one), sum it in two halves. */
	if (bpf_skb_change_tail(skb, PN_ICMP_QUOTE, 0))
		return drop(PN_DROP_ERROR);
	for (int i = 0; i < 2; i++) {
		if (bpf_skb_load_bytes(skb, i * sizeof(chunk), chunk, sizeof(chunk)) < 0)
			return drop(PN_DROP_ERROR);
		sum = bpf_csum_diff(NULL, 0, (__be32 *)chunk, sizeof(chunk), sum);
	}
	__builtin_memset(&new, 0, sizeof(new));
	new.icmp.type = PN_ICMP_DEST_UNREACH;
	new.icmp.code = PN_ICMP_FRAG_NEEDED;
	new.icmp.mtu = bpf_htons(mtu);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&new.icmp, sizeof(new.icmp), sum);
	new.icmp.checksum = ~csum_fold(sum);
	new.ip.version = 4;
	new.ip.ihl = 5;
	new.ip.tos = PN_IPTOS_PREC_INTERNETCONTROL;
	new.ip.tot_len = bpf_htons(sizeof(new) + PN_ICMP_QUOTE);
	new.ip.ttl = 64;
	new.ip.protocol = IPPROTO_ICMP;
	new.ip.saddr = inner->daddr;
	new.ip.daddr = inner->saddr;
	new.ip.check = ip_checksum(&new.ip);
	/* A TUN has no link-layer header: the new headers go in at offset 0. */
	if (bpf_skb_adjust_room(skb, sizeof(new), BPF_ADJ_ROOM_MAC, 0))
		return drop(PN_DROP_ERROR);
	if (bpf_skb_store_bytes(skb, 0, &new, sizeof(new), 0))
		return drop(PN_DROP_ERROR);
	count_drop(PN_DROP_FRAG_NEEDED);
	return bpf_redirect(cfg->tunnel_ifindex, BPF_F_INGRESS);
}

SEC("tc")
int pn_tun_egress(struct __sk_buff *skb)
{
	const __u32 zero = 0;
	struct pn_config *cfg;
	struct pn_lpm_key key;
	struct pn_peer *peer;
	struct pn_peer_counters *ctr;
	struct iphdr inner, outer;
	__u64 segs;
	__u8 ecn;
	__u32 len;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return drop(PN_DROP_NOT_IPV4);
	/* A TUN device has no link-layer header: the IPv4 header starts at offset 0. */
	if (bpf_skb_load_bytes(skb, 0, &inner, sizeof(inner)) < 0 || inner.version != 4 ||
	    inner.ihl < 5)
		return drop(PN_DROP_MALFORMED);

	cfg = bpf_map_lookup_elem(&pn_config, &zero);
	if (!cfg || !cfg->local_addr || !cfg->underlay_ifindex)
		return drop(PN_DROP_UNCONFIGURED);

	key.prefixlen = 32;
	key.addr = inner.daddr;
	peer = bpf_map_lookup_elem(&pn_peers, &key);
	if (!peer)
		return drop(PN_DROP_NO_PEER);
	/* nopmtudisc copies DF: a DF packet above the learned path MTU - 20 would be lost behind
	 * the router; its sender hears it from here, as from kernel ipip. */
	if (inner.frag_off & bpf_htons(PN_IP_DF)) {
		struct pn_pmtu *pm = bpf_map_lookup_elem(&pn_pmtu, &peer->addr);

		if (pm && bpf_ktime_get_ns() - pm->learned_ns < PN_PMTU_EXPIRES_NS &&
		    wire_len(skb, &inner) > pm->mtu - PN_IP_HLEN)
			return too_big(skb, cfg, &inner, pm->mtu - PN_IP_HLEN);
	}

	len = skb->len + PN_IP_HLEN;
	if (len > 0xffff)
		return drop(PN_DROP_MALFORMED);

	segs = wire_packets(skb); /* before adjust_room, which resets gso_segs */
	ecn = inner.tos & 3;
	__builtin_memset(&outer, 0, sizeof(outer));
	outer.version = 4;
	outer.ihl = 5;
	outer.tos = ecn == 3 ? 2 : ecn;              /* INET_ECN_encapsulate with tos 0 */
	outer.tot_len = bpf_htons(len);
	outer.id = inner.id;                         /* GRO on the peer merges like the inner flow */
	outer.frag_off = inner.frag_off & bpf_htons(PN_IP_DF); /* nopmtudisc: copy DF only */
	outer.ttl = inner.ttl;                       /* ttl inherit */
	outer.protocol = IPPROTO_IPIP;
	outer.saddr = cfg->local_addr;
	outer.daddr = peer->addr;
	outer.check = ip_checksum(&outer);

	/* L3 encap at offset 0 (no MAC header on a TUN): GSO packets are marked SKB_GSO_IPXIP4 and
	 * stay whole; FIXED_GSO keeps gso_size, since the inner MSS already fits the tunnel MTU. */
	if (bpf_skb_adjust_room(skb, PN_IP_HLEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_FIXED_GSO))
		return drop(PN_DROP_ERROR);
	if (bpf_skb_store_bytes(skb, 0, &outer, sizeof(outer), 0))
		return drop(PN_DROP_ERROR);
	/* bpf_redirect_neigh pulls an Ethernet header and builds the real one from the neighbour
	 * entry; it only needs a zeroed (not multicast) destination and the IPv4 ethertype. */
	if (bpf_skb_change_head(skb, PN_ETH_HLEN, 0))
		return drop(PN_DROP_ERROR);
	{
		__u16 proto = bpf_htons(ETH_P_IP);

		if (bpf_skb_store_bytes(skb, 12, &proto, sizeof(proto), 0))
			return drop(PN_DROP_ERROR);
	}

	ctr = bpf_map_lookup_elem(&pn_counters, &peer->index);
	if (ctr) {
		ctr->tx_packets += segs;
		ctr->tx_bytes += len;
	}
	/* NULL next hop: the kernel routes the outer destination on the underlay and resolves
	 * ARP itself, queueing the first packet instead of losing it. */
	return bpf_redirect_neigh(cfg->underlay_ifindex, NULL, 0, 0);
}

/* Delivers the IPv4 packet at PN_ETH_HLEN (header `ip`) that arrived on the underlay for a pod
 * or this node: what is left of a decapsulated packet, or a relayed ICMP. `fast`: it may go
 * straight into a local pod (its source is one the sender may send from). */
static __always_inline int deliver(struct __sk_buff *skb, const struct pn_config *cfg, const struct iphdr *ip, int fast)
{
	struct pn_pod *pod;

	pod = fast ? bpf_map_lookup_elem(&pn_pods, &ip->daddr) : NULL;
	if (pod && ip->ttl > 1) {
		/* Straight into the pod's netns: skips cni0, which would software-segment every GSO
		 * packet (skb->encapsulation stays set after decap). Do what the forwarding hop would
		 * have done: gateway MAC as source, TTL - 1. */
		__u16 old_word, new_word;
		__u8 macs[12];

		__builtin_memcpy(macs, pod->pod_mac, 6);
		__builtin_memcpy(macs + 6, pod->host_mac, 6);
		if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0))
			return drop(PN_DROP_ERROR);
		old_word = bpf_htons(((__u16)ip->ttl << 8) | ip->protocol);
		new_word = bpf_htons(((__u16)(ip->ttl - 1) << 8) | ip->protocol);
		if (bpf_skb_store_bytes(skb, PN_ETH_HLEN + 8, &new_word, sizeof(new_word), 0))
			return drop(PN_DROP_ERROR);
		if (bpf_l3_csum_replace(skb, PN_ETH_HLEN + 10, old_word, new_word, sizeof(new_word)))
			return drop(PN_DROP_ERROR);
		return bpf_redirect_peer(pod->ifindex, 0);
	}
	/* Not a local pod we know (the node itself, a pod not discovered yet, TTL about to expire),
	 * or not `fast`: hand it to the stack as received on the tunnel device, as kernel ipip does,
	 * so routing, rp_filter, netfilter and ICMP errors behave as they would with the module. */
	if (cfg->tunnel_ifindex)
		return bpf_redirect(cfg->tunnel_ifindex, BPF_F_INGRESS);
	return TC_ACT_OK;
}

/* Learns the outer path MTU to `peer` from a router's `mtu`: the kernel's floor, lower while an
 * entry is fresh. As the kernel's __ip_rt_update_pmtu, a report equal or lower renews the entry's
 * 10 minutes, a higher one changes nothing before the entry expires (no refresh: else a stale low
 * MTU lived as long as anyone repeated a higher one). Returns the entry, or NULL if the map is full. */
static __always_inline struct pn_pmtu *learn_pmtu(__u32 peer, __u32 mtu)
{
	__u64 now = bpf_ktime_get_ns();
	struct pn_pmtu *pm = bpf_map_lookup_elem(&pn_pmtu, &peer);

	if (mtu < PN_MIN_PMTU)
		mtu = PN_MIN_PMTU;
	if (!pm) {
		struct pn_pmtu fresh = {.mtu = mtu, .learned_ns = now};

		bpf_map_update_elem(&pn_pmtu, &peer, &fresh, BPF_NOEXIST);
		pm = bpf_map_lookup_elem(&pn_pmtu, &peer);
		if (!pm)
			return NULL;
	} else if (now - pm->learned_ns >= PN_PMTU_EXPIRES_NS || mtu <= pm->mtu) {
		pm->mtu = mtu;
		pm->learned_ns = now;
	}
	__sync_fetch_and_add(&pm->icmp_in, 1);
	return pm;
}

/* The longest ICMP message (header + quote) whose checksum icmp_checksum_ok verifies, summed in
 * PN_ICMP_CSUM_CHUNK-byte pieces: what a 1500-byte IPv4 packet carries. Routers keep an ICMP error
 * within 576 bytes in all (RFC 1812 4.3.2.3; Linux's icmp_send too), so a longer one is no router's
 * and is not learned from. The bound keeps the verifier's loop short (24 passes). */
#define PN_ICMP_CSUM_CHUNK 64
#define PN_ICMP_CSUM_MAX 1480

/* True when the ICMP message of `len` bytes at `off` (its header on) sums to 0xffff with its
 * checksum, as icmp_rcv requires before the kernel acts on one (the stack drops the rest as
 * InCsumErrors). Each piece is zero-padded: zeros add nothing, and an odd last byte is summed as the
 * high byte of a word, as RFC 1071 pads it. */
static __always_inline int icmp_checksum_ok(struct __sk_buff *skb, __u32 off, __u32 len)
{
	__u8 chunk[PN_ICMP_CSUM_CHUNK];
	__u32 sum = 0;

	if (len > PN_ICMP_CSUM_MAX)
		return 0;
	for (__u32 i = 0; i < (PN_ICMP_CSUM_MAX + PN_ICMP_CSUM_CHUNK - 1) / PN_ICMP_CSUM_CHUNK; i++) {
		__u32 at = i * PN_ICMP_CSUM_CHUNK, n;

		if (at >= len)
			break;
		n = len - at;
		if (n >= PN_ICMP_CSUM_CHUNK) {
			if (bpf_skb_load_bytes(skb, off + at, chunk, PN_ICMP_CSUM_CHUNK) < 0)
				return 0;
		} else {
			__builtin_memset(chunk, 0, sizeof(chunk));
			/* n is 1..63 here; the mask and + 1 prove that to the verifier. */
			if (bpf_skb_load_bytes(skb, off + at, chunk, ((n - 1) & (PN_ICMP_CSUM_CHUNK - 1)) + 1) < 0)
				return 0;
		}
		sum = bpf_csum_diff(NULL, 0, (__be32 *)chunk, sizeof(chunk), sum);
	}
	return csum_fold(sum) == 0xffff;
}

#define PN_AF_INET 2

/* True when `addr` is one of this node's own addresses (a local route: the stack delivers it to
 * itself), looked up as for a packet that enters on flannel.ipip. Any address a socket of the node
 * sends from over the tunnel: the tunnel address, cni0's, the underlay's (a reply to a pod that
 * reached the node there). bpf_fib_lookup says NOT_FWDED for a local route, and for a broadcast
 * one, to which the stack's icmp_rcv drops an ICMP error anyway. */
static __always_inline int node_address(struct __sk_buff *skb, const struct pn_config *cfg, __u32 addr)
{
	struct bpf_fib_lookup fib;

	__builtin_memset(&fib, 0, sizeof(fib));
	fib.family = PN_AF_INET;
	fib.ipv4_dst = addr;
	fib.ifindex = cfg->tunnel_ifindex;
	return cfg->tunnel_ifindex && bpf_fib_lookup(skb, &fib, sizeof(fib), 0) == BPF_FIB_LKUP_RET_NOT_FWDED;
}

/* True when the quoted `inner` packet, from the underlay host `sender`, to `peer` (our protocol 4
 * to it quoted around it) is one this node could have sent there: the inner source one of its
 * local pods or one of its own addresses, the inner destination in that peer's pod subnet (where
 * pn_tun_egress sends it), and the sender no pod (no router on the underlay has an overlay
 * address). Anyone on the underlay can quote a made-up inner packet around our outer header (this
 * node's address and its peers' are no secret); relaying that would make the node send an ICMP
 * from and to addresses a stranger picks (into a pod past netfilter, or forwarded on by the stack).
 * Kernel ipip relays nothing at all. */
static __always_inline int quotes_ours(struct __sk_buff *skb, const struct pn_config *cfg, __u32 sender, __u32 peer,
				       const struct iphdr *inner)
{
	struct pn_lpm_key key = {.prefixlen = 32, .addr = sender};
	struct pn_peer *dst;

	if (bpf_map_lookup_elem(&pn_peers, &key))
		return 0;
	key.addr = inner->daddr;
	dst = bpf_map_lookup_elem(&pn_peers, &key);
	if (!dst || dst->addr != peer)
		return 0;
	return bpf_map_lookup_elem(&pn_pods, &inner->saddr) || node_address(skb, cfg, inner->saddr);
}

/*
 * An ICMP to this node (header `ip`). A "fragmentation needed" quoting our protocol 4 to a known
 * peer, with a valid ICMP checksum, is ours: its MTU is learned for the peer (from any sender,
 * as the kernel learns), and when it quotes the inner IPv4 header + 8 bytes of a DF packet above
 * that MTU - 20 that this node sent (quotes_ours) it is rewritten in place into the inner "fragmentation needed" kernel ipip would send
 * (next-hop MTU = path MTU - 20, quoting the inner packet as received) and delivered to the inner
 * sender like a decapsulated packet. Its source is the inner destination: an address that is not
 * this node's (the stack drops a packet from a local source as a martian) and that routes back
 * over flannel.ipip (rp_filter). A quote of a packet this node did not send is dropped (counted
 * fragNeededForeign); the inner sender, if real, hears the path MTU from too_big when it resends.
 * Anything else passes to the stack untouched.
 */
static __always_inline int frag_needed(struct __sk_buff *skb, const struct pn_config *cfg, const struct iphdr *ip)
{
	struct {
		struct pn_icmp icmp;
		struct iphdr outer; /* our outer header, as quoted */
	} old;
	struct {
		struct iphdr ip;
		struct pn_icmp icmp;
	} new;
	struct iphdr inner;
	struct pn_pmtu *pm;
	__u32 len = bpf_ntohs(ip->tot_len), quote_end, mtu, sum;
	__u8 inner_type;

	/* The router's IP length must hold the ICMP header and our outer header: the bytes after it
	 * may be Ethernet padding. */
	if (ip->ihl != 5 || (ip->frag_off & bpf_htons(PN_IP_MF | PN_IP_OFFSET)) || len > skb->len - PN_ETH_HLEN ||
	    len < PN_IP_HLEN + sizeof(old))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, PN_ETH_HLEN + PN_IP_HLEN, &old, sizeof(old)) < 0)
		return TC_ACT_OK;
	if (old.icmp.type != PN_ICMP_DEST_UNREACH || old.icmp.code != PN_ICMP_FRAG_NEEDED || old.outer.version != 4 ||
	    old.outer.ihl != 5 || old.outer.protocol != IPPROTO_IPIP || old.outer.saddr != cfg->local_addr ||
	    !bpf_map_lookup_elem(&pn_peer_addrs, &old.outer.daddr))
		return TC_ACT_OK; /* not about our tunnel to a peer: the stack's */
	if (!icmp_checksum_ok(skb, PN_ETH_HLEN + PN_IP_HLEN, len - PN_IP_HLEN))
		return TC_ACT_OK; /* corrupt (or over PN_ICMP_CSUM_MAX): the stack drops it, counting InCsumErrors */
	mtu = bpf_ntohs(old.icmp.mtu);
	if (mtu >= bpf_ntohs(old.outer.tot_len))
		return TC_ACT_OK; /* says the packet it quotes fit: nothing to learn */
	pm = learn_pmtu(old.outer.daddr, mtu);
	if (!pm)
		return TC_ACT_OK;
	mtu = pm->mtu;

	/* Relay only what the inner sender can use: the inner header + 8 bytes quoted, DF set (it
	 * asked for path MTU discovery), too big for the path MTU (tunnel header included), a first
	 * fragment, and no ICMP error about an ICMP error. */
	if (bpf_skb_load_bytes(skb, PN_ETH_HLEN + 2 * PN_IP_HLEN + sizeof(struct pn_icmp), &inner, sizeof(inner)) < 0 ||
	    inner.version != 4 || inner.ihl < 5 || !(inner.frag_off & bpf_htons(PN_IP_DF)) ||
	    (inner.frag_off & bpf_htons(PN_IP_OFFSET)) || bpf_ntohs(inner.tot_len) + PN_IP_HLEN <= mtu)
		return TC_ACT_OK;
	quote_end = 2 * PN_IP_HLEN + sizeof(struct pn_icmp) + inner.ihl * 4 + 8;
	if (len < quote_end)
		return TC_ACT_OK;
	if (inner.protocol == IPPROTO_ICMP) {
		if (bpf_skb_load_bytes(skb, PN_ETH_HLEN + 2 * PN_IP_HLEN + sizeof(struct pn_icmp) + inner.ihl * 4,
				       &inner_type, 1) < 0)
			return TC_ACT_OK;
		if (icmp_is_error(inner_type))
			return TC_ACT_OK;
	}
	if (!quotes_ours(skb, cfg, ip->saddr, old.outer.daddr, &inner))
		return drop(PN_DROP_FRAG_NEEDED_FOREIGN);

	/* The new ICMP: the old one without our outer header in its quote, another MTU. Its
	 * checksum follows from the old one (RFC 1624): the quote's alignment is unchanged. */
	__builtin_memset(&new, 0, sizeof(new));
	new.icmp.type = PN_ICMP_DEST_UNREACH;
	new.icmp.code = PN_ICMP_FRAG_NEEDED;
	new.icmp.mtu = bpf_htons(mtu - PN_IP_HLEN);
	sum = (__u16)~old.icmp.checksum;
	old.icmp.checksum = 0;
	sum = bpf_csum_diff((__be32 *)&old, sizeof(old), (__be32 *)&new.icmp, sizeof(new.icmp), sum);
	new.icmp.checksum = ~csum_fold(sum);
	new.ip.version = 4;
	new.ip.ihl = 5;
	new.ip.tos = PN_IPTOS_PREC_INTERNETCONTROL; /* as icmp_send */
	new.ip.tot_len = bpf_htons(len - PN_IP_HLEN);
	new.ip.ttl = 64;
	new.ip.protocol = IPPROTO_ICMP;
	new.ip.saddr = inner.daddr;
	new.ip.daddr = inner.saddr;
	new.ip.check = ip_checksum(&new.ip);

	/* Drop the router's IP header; the old ICMP header and our outer header make room for the new headers. */
	if (bpf_skb_adjust_room(skb, -PN_IP_HLEN, BPF_ADJ_ROOM_MAC, 0))
		return drop(PN_DROP_ERROR);
	if (bpf_skb_store_bytes(skb, PN_ETH_HLEN, &new, sizeof(new), BPF_F_RECOMPUTE_CSUM))
		return drop(PN_DROP_ERROR);
	__sync_fetch_and_add(&pm->relayed, 1);
	/* quotes_ours vouched for it: its source is the quoted packet's destination, in the peer's subnet. */
	return deliver(skb, cfg, &new.ip, 1);
}

/* True when the decapsulated packet's source lies in the pod subnet of the peer that sent it
 * (pn_peers, the LPM the egress routes by): what a pod or the tunnel address of that node sends.
 * Only such a packet may skip the host stack into a local pod (review finding 6); any other inner
 * source (a peer's pod posing as another node's, a node forwarding someone else's packet, a
 * stranger spoofing a peer's underlay address with a source outside that peer's subnet) enters the
 * stack on flannel.ipip, where rp_filter, netfilter and conntrack judge it, as with kernel ipip.
 * IPIP carries no proof of its sender: a spoofer who picks a source inside the peer's subnet still
 * passes, as it passes kernel ipip's rp_filter. */
static __always_inline int from_sender_subnet(const struct iphdr *outer, const struct iphdr *inner)
{
	struct pn_lpm_key key = {.prefixlen = 32, .addr = inner->saddr};
	struct pn_peer *src = bpf_map_lookup_elem(&pn_peers, &key);

	return src && src->addr == outer->saddr;
}

SEC("tc")
int pn_underlay_ingress(struct __sk_buff *skb)
{
	const __u32 zero = 0;
	struct pn_config *cfg;
	struct pn_peer_counters *ctr;
	struct iphdr outer, inner;
	__u32 *index;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, PN_ETH_HLEN, &outer, sizeof(outer)) < 0)
		return TC_ACT_OK;
	if (outer.protocol != IPPROTO_IPIP && outer.protocol != IPPROTO_ICMP)
		return TC_ACT_OK;
	cfg = bpf_map_lookup_elem(&pn_config, &zero);
	if (!cfg || !cfg->local_addr || outer.daddr != cfg->local_addr)
		return TC_ACT_OK; /* not addressed to this node: not ours to judge */
	if (outer.protocol == IPPROTO_ICMP)
		return frag_needed(skb, cfg, &outer);

	index = bpf_map_lookup_elem(&pn_peer_addrs, &outer.saddr);
	if (!index)
		return drop(PN_DROP_UNKNOWN_SOURCE);
	/* Flannel/kernel ipip senders use no outer options; an outer fragment cannot be
	 * decapsulated before reassembly, which happens after tc. */
	if (outer.version != 4 || outer.ihl != 5 ||
	    (outer.frag_off & bpf_htons(PN_IP_MF | PN_IP_OFFSET)))
		return drop(PN_DROP_MALFORMED);
	if (bpf_skb_load_bytes(skb, PN_ETH_HLEN + PN_IP_HLEN, &inner, sizeof(inner)) < 0 ||
	    inner.version != 4 || inner.ihl < 5)
		return drop(PN_DROP_MALFORMED);

	ctr = bpf_map_lookup_elem(&pn_counters, index);
	if (ctr) {
		ctr->rx_packets += wire_packets(skb);
		ctr->rx_bytes += skb->len - PN_ETH_HLEN;
	}

	/* RFC 6040 / ip_tunnel's IP_ECN_decapsulate: CE on the outer header is kept by marking
	 * an ECN-capable inner packet CE; a not-ECT inner packet with CE outside is dropped. */
	if ((outer.tos & 3) == 3 && (inner.tos & 3) != 3) {
		if ((inner.tos & 3) == 0)
			return drop(PN_DROP_ECN);
		__u16 old_w = bpf_htons(((__u16)((inner.version << 4) | inner.ihl) << 8) | inner.tos);
		inner.tos |= 3;
		__u16 new_w = bpf_htons(((__u16)((inner.version << 4) | inner.ihl) << 8) | inner.tos);
		if (bpf_skb_store_bytes(skb, PN_ETH_HLEN + PN_IP_HLEN + 1, &inner.tos, 1, 0) ||
		    bpf_l3_csum_replace(skb, PN_ETH_HLEN + PN_IP_HLEN + 10, old_w, new_w, 2))
			return drop(PN_DROP_ERROR);
	}

	if (bpf_skb_adjust_room(skb, -PN_IP_HLEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_DECAP_L3_IPV4 | BPF_F_ADJ_ROOM_FIXED_GSO))
		return drop(PN_DROP_ERROR);

	return deliver(skb, cfg, &inner, from_sender_subnet(&outer, &inner));
}
