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
 *   pn_underlay_ingress  tc clsact ingress of the underlay (eth0). Protocol 4 to this node from
 *                        a known peer is decapsulated; from anyone else it is dropped and
 *                        counted. Everything else passes untouched. Decapsulated packets for a
 *                        local pod go straight into the pod (bpf_redirect_peer); the rest enter
 *                        the stack on flannel.ipip, as if the kernel ipip device received them.
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

static __always_inline int drop(__u32 reason)
{
	__u64 *c = bpf_map_lookup_elem(&pn_drops, &reason);

	if (c)
		*c += 1; /* per-CPU slot: no atomic needed */
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

SEC("tc")
int pn_underlay_ingress(struct __sk_buff *skb)
{
	const __u32 zero = 0;
	struct pn_config *cfg;
	struct pn_peer_counters *ctr;
	struct pn_pod *pod;
	struct iphdr outer, inner;
	__u32 *index;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, PN_ETH_HLEN, &outer, sizeof(outer)) < 0)
		return TC_ACT_OK;
	if (outer.protocol != IPPROTO_IPIP)
		return TC_ACT_OK;
	cfg = bpf_map_lookup_elem(&pn_config, &zero);
	if (!cfg || !cfg->local_addr || outer.daddr != cfg->local_addr)
		return TC_ACT_OK; /* not addressed to this node: not ours to judge */

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

	pod = bpf_map_lookup_elem(&pn_pods, &inner.daddr);
	if (pod && inner.ttl > 1) {
		/* Straight into the pod's netns: skips cni0, which would software-segment every GSO
		 * packet (skb->encapsulation stays set after decap). Do what the forwarding hop would
		 * have done: gateway MAC as source, TTL - 1. */
		__u16 old_word, new_word;
		__u8 macs[12];

		__builtin_memcpy(macs, pod->pod_mac, 6);
		__builtin_memcpy(macs + 6, pod->host_mac, 6);
		if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0))
			return drop(PN_DROP_ERROR);
		old_word = bpf_htons(((__u16)inner.ttl << 8) | inner.protocol);
		new_word = bpf_htons(((__u16)(inner.ttl - 1) << 8) | inner.protocol);
		if (bpf_skb_store_bytes(skb, PN_ETH_HLEN + 8, &new_word, sizeof(new_word), 0))
			return drop(PN_DROP_ERROR);
		if (bpf_l3_csum_replace(skb, PN_ETH_HLEN + 10, old_word, new_word, sizeof(new_word)))
			return drop(PN_DROP_ERROR);
		return bpf_redirect_peer(pod->ifindex, 0);
	}
	/* Not a local pod we know (the node itself, a pod not discovered yet, TTL about to expire):
	 * hand it to the stack as received on the tunnel device, as kernel ipip does, so routing,
	 * rp_filter, netfilter and ICMP errors behave as they would with the module. */
	if (cfg->tunnel_ifindex)
		return bpf_redirect(cfg->tunnel_ifindex, BPF_F_INGRESS);
	return TC_ACT_OK;
}
