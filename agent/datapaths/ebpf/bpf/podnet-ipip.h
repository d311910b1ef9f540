/* Shared between the tc programs (podnet-ipip.bpf.c) and the loader (podnet-bpf.c).
 * Changing a struct here changes a pinned map's layout: libbpf then refuses to reuse the
 * pinned map, and `podnet-bpf attach` says so (run `podnet-bpf detach` first). */
#ifndef PODNET_IPIP_H
#define PODNET_IPIP_H

#define PN_MAX_PEERS 1024
#define PN_MAX_PODS 4096

/* Program-array-free layout: every value is plain data so the loader can read and write it. */

/* LPM key: pod CIDR. addr in network byte order. */
struct pn_lpm_key {
	__u32 prefixlen;
	__u32 addr;
};

/* LPM value: where that CIDR lives. */
struct pn_peer {
	__u32 addr;  /* peer underlay IPv4, network byte order */
	__u32 index; /* slot in pn_counters */
};

/* Local pod: pod IPv4 (network byte order) -> where to deliver decapsulated packets. */
struct pn_pod {
	__u32 ifindex;     /* host-side veth */
	__u8 pod_mac[6];   /* destination MAC (the pod's eth0) */
	__u8 host_mac[6];  /* source MAC (cni0, the pod's gateway) */
};

struct pn_config {
	__u32 local_addr;       /* this node's underlay IPv4, network byte order; 0 = not configured */
	__u32 underlay_ifindex; /* eth0 */
	__u32 tunnel_ifindex;   /* flannel.ipip */
	__u32 flags;            /* reserved */
};

struct pn_peer_counters {
	__u64 tx_packets;
	__u64 tx_bytes;
	__u64 rx_packets;
	__u64 rx_bytes;
};

/* pn_pmtu value: what an outer ICMP "fragmentation needed" about our protocol 4 to a peer taught
 * us (key: the peer's underlay IPv4, network byte order). A map of its own, so adding it changed
 * no pinned layout. */
struct pn_pmtu {
	__u32 mtu;        /* outer path MTU to the peer (bytes, outer header included), >= PN_MIN_PMTU */
	__u32 reserved;
	__u64 learned_ns; /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) of the last update */
	__u64 icmp_in;    /* such ICMPs received from the underlay */
	__u64 relayed;    /* of those, relayed to the inner sender as an inner ICMP */
};

/* The kernel's floor for a learned path MTU (net.ipv4.route.min_pmtu) and its lifetime
 * (net.ipv4.route.mtu_expires, 10 minutes): a lower MTU in an ICMP is raised to it, an older
 * entry is forgotten, as the kernel forgets its route exception. */
#define PN_MIN_PMTU 552
#define PN_PMTU_EXPIRES_NS (600ULL * 1000000000ULL)

/* Drop reasons, the one list: X(enumerator, index, name). The enum below and the loader's name
 * table are generated from it. The name is what `podnet-bpf counters` prints and the agent
 * reports; it must be one of the TypeScript DropReason names, and BPF_DROP_REASONS in
 * src/model/drop-reasons.ts lists these in index order (test/unit/model/drop-reasons.test.ts reads
 * this header and compares). Index i < PN_DROP_MAX counts in pn_drops[i]; PN_DROP_MAX <= i <
 * PN_DROP_ALL in pn_drops_ext[i - PN_DROP_MAX] (pn_drops was full, and its size is part of its
 * pinned layout). Both maps are pinned: add a reason only in the next free index, never renumber
 * one. */
#define PN_DROP_REASONS(X)                                                                    \
	X(PN_DROP_NO_PEER, 0, "noPeer")             /* egress: no peer owns the inner destination */ \
	X(PN_DROP_UNKNOWN_SOURCE, 1, "unknownSource") /* ingress: protocol 4 to us from no peer */   \
	X(PN_DROP_MALFORMED, 2, "malformed")        /* outer options/fragment, inner not IPv4, bad IPv4 */ \
	X(PN_DROP_NOT_IPV4, 3, "notIpv4")           /* egress: non-IPv4 on the tunnel (e.g. IPv6 RS) */ \
	X(PN_DROP_ERROR, 4, "error")                /* a helper failed (adjust_room, store, change_head) */ \
	X(PN_DROP_UNCONFIGURED, 5, "unconfigured")  /* pn_config not written yet */ \
	X(PN_DROP_ECN, 6, "ecn")                    /* ingress: outer CE on a not-ECT inner packet (RFC 6040) */ \
	X(PN_DROP_FRAG_NEEDED, 7, "fragNeeded")     /* egress: DF inner packet above the peer's path MTU - 20; its sender got an ICMP */ \
	X(PN_DROP_FRAG_NEEDED_FOREIGN, 8, "fragNeededForeign") /* ingress: a "fragmentation needed" about our tunnel quoting no packet of ours: learned, not relayed */

/* Index into pn_drops. */
enum pn_drop_reason {
#define PN_DROP_ENUM(id, index, name) id = index,
	PN_DROP_REASONS(PN_DROP_ENUM)
#undef PN_DROP_ENUM
	PN_DROP_MAX = 8,     /* pn_drops' max_entries: part of the pinned layout */
	PN_DROP_EXT_MAX = 8, /* pn_drops_ext's max_entries: part of the pinned layout */
	PN_DROP_ALL = PN_DROP_MAX + PN_DROP_EXT_MAX,
};

#ifndef __bpf__
/* The loader's name of each slot (NULL: a free slot). Not compiled into the BPF object. */
static const char *const pn_drop_names[PN_DROP_ALL] = {
#define PN_DROP_NAME(id, index, name) [id] = name,
	PN_DROP_REASONS(PN_DROP_NAME)
#undef PN_DROP_NAME
};
#endif

#endif
