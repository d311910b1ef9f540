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

/* Index into pn_drops. */
enum pn_drop_reason {
	PN_DROP_NO_PEER = 0,        /* egress: no peer owns the inner destination */
	PN_DROP_UNKNOWN_SOURCE = 1, /* ingress: protocol 4 to us from an address that is no peer */
	PN_DROP_MALFORMED = 2,      /* ingress: outer options/fragment, inner not IPv4; egress: bad IPv4 */
	PN_DROP_NOT_IPV4 = 3,       /* egress: non-IPv4 on the tunnel device (e.g. IPv6 RS) */
	PN_DROP_ERROR = 4,          /* a helper failed (adjust_room, store, change_head) */
	PN_DROP_UNCONFIGURED = 5,   /* pn_config not written yet */
	PN_DROP_MAX = 8,
};

#endif
