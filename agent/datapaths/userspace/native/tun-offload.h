/*
 * The TUN offload byte work of podnet-tun.node: cutting TSO super-packets into segments,
 * completing partial checksums, and GRO's rules for merging received TCP segments into one
 * GSO_TCPV4 write. Pure buffer code: no syscalls, no N-API (podnet-tun.c has those).
 *
 * Why in C: this is byte work the kernel would otherwise do per packet, and JS does it ~20x
 * slower (checksums). With TUNSETOFFLOAD(CSUM|TSO4) the kernel hands the TUN reader whole 64 KB
 * TCP super-packets and unchecksummed packets, and accepts GSO_TCPV4 super-packets back. On read
 * the shim turns them back into exactly what the kernel would have handed over without offloads,
 * so TypeScript treats every segment as an ordinary packet (peer lookup, checks, outer header
 * policy), unchanged; on write it merges what GRO would have merged.
 *
 * What each shim call does with these, in JS terms (argument shapes, units, return codes), is
 * documented once, in agent/datapaths/userspace/shim.ts. Buffers hold [virtio_net_hdr | IPv4
 * packet]; virtio_net_hdr fields are in native byte order (the TUN's legacy default), packet
 * fields in network order.
 */
#ifndef PODNET_TUN_OFFLOAD_H
#define PODNET_TUN_OFFLOAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define VNET_HLEN 10     /* struct virtio_net_hdr */
#define MAX_IPV4 65535   /* largest IPv4 packet, so the largest TSO read after VNET_HLEN */
#define MAX_MERGE 64     /* packets per GSO write (iovecs) */

/* Where segments go: out[used..cap), segment i at offs[i] (after headroom bytes), lens[i]. */
struct segs {
	uint8_t *out;
	size_t cap, used, headroom;
	int32_t *offs, *lens;
	size_t max, n;
};

/*
 * One [virtio_net_hdr | packet] as the TUN hands it over (p[0..n)), appended to o as the
 * packets the kernel would have handed over without offloads: a TSO super-packet cut into
 * gso_size segments (IP total length, ID + i, header checksum; TCP seq + i*gso_size, FIN/PSH only
 * on the last, CWR only on the first, full checksum), a partial checksum completed.
 * 0: done; -1: malformed (nothing appended); -2: does not fit in what is left of o (nothing appended).
 */
int seg_emit(const uint8_t *p, size_t n, struct segs *o);

/* A received packet as the worker laid it out: [virtio_net_hdr | IPv4 packet]. */
struct pk {
	uint8_t *v, *ip;
	size_t tot, thl, plen;
	uint32_t seq;
	uint8_t flags;
};

/* Does [off, off+len) lie inside a buffer of buflen bytes? */
static inline int item_in(int32_t off, int32_t len, size_t buflen)
{
	return off >= 0 && len >= 0 && (size_t)off + (size_t)len <= buflen;
}

/*
 * For items i.. of a writeCoalesced batch (item j at buf[offs[j]..+lens[j]), item i inside buf):
 * 0 when item i must be written alone as JS laid it out (it carries its own virtio_net_hdr, is
 * not a verified plain TCP segment with payload, or ends a run with PSH/FIN); else k >= 1 items
 * from i, at most MAX_MERGE, that GRO would merge into one packet, described in run[0..k).
 */
size_t coalesce_run(uint8_t *buf, size_t buflen, const int32_t *offs, const int32_t *lens, size_t i, size_t count,
		    struct pk run[MAX_MERGE]);

/*
 * The write for run[0..k) from coalesce_run, as iov[0..k): with k == 1 the packet as it is;
 * else one GSO_TCPV4 super-packet, rewriting the first packet's virtio_net_hdr and IP/TCP headers
 * in place (the others contribute their payload, not copied). Returns the bytes the write must
 * take to count as done.
 */
size_t gso_prepare(struct pk run[MAX_MERGE], size_t k, struct iovec iov[MAX_MERGE]);

#endif
