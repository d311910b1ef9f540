/*
 * TUN offload byte work for podnet-tun.node; see tun-offload.h for what each function does, and
 * agent/datapaths/userspace/shim.ts for the calls that use them.
 */
#include "tun-offload.h"

#include <arpa/inet.h>
#include <linux/virtio_net.h>
#include <netinet/in.h>
#include <string.h>

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10
#define TH_URG 0x20
#define TH_CWR 0x80
#define IP_DF_HI 0x40       /* DF in the high byte of frag_off */
#define SEG_ALIGN 16

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void wr16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
/* virtio_net_hdr fields: native byte order. */
static inline uint16_t rdn16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}
static inline void wrn16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

/*
 * RFC 1071 sum over memory words in native order, 64 bits at a time with end-around carry.
 * The ones'-complement sum does not care about byte order as long as it is consistent, so the
 * folded result, stored back with memcpy, is the checksum's bytes in network order.
 */
static uint64_t csum_add(const uint8_t *p, size_t n, uint64_t s)
{
	uint64_t v;
	while (n >= 8) {
		memcpy(&v, p, 8);
		s += v;
		s += s < v;
		p += 8;
		n -= 8;
	}
	if (n >= 4) {
		uint32_t w;
		memcpy(&w, p, 4);
		s += w;
		s += s < w;
		p += 4;
		n -= 4;
	}
	if (n >= 2) {
		uint16_t h;
		memcpy(&h, p, 2);
		s += h;
		s += s < h;
		p += 2;
		n -= 2;
	}
	if (n) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		v = p[0];
#else
		v = (uint64_t)p[0] << 8;
#endif
		s += v;
		s += s < v;
	}
	return s;
}

static uint16_t csum_fold(uint64_t s)
{
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* The TCP/UDP pseudo-header of the IPv4 header at ip, for an L4 length l4len. */
static uint64_t pseudo_sum(const uint8_t *ip, uint8_t proto, uint32_t l4len)
{
	uint64_t s = csum_add(ip + 12, 8, 0);
	return s + htons(proto) + htons((uint16_t)l4len);
}

static void ip_csum(uint8_t *ip, size_t ihl)
{
	uint16_t c;
	ip[10] = ip[11] = 0;
	c = (uint16_t)~csum_fold(csum_add(ip, ihl, 0));
	memcpy(ip + 10, &c, 2);
}

/* A partial checksum (the field holds the pseudo-header sum) made whole. */
static int csum_complete(uint8_t *pkt, size_t len, size_t start, size_t off)
{
	uint16_t c;
	if (start + off + 2 > len)
		return -1;
	c = (uint16_t)~csum_fold(csum_add(pkt + start, len - start, 0));
	if (c == 0 && len >= 20 && pkt[0] >> 4 == 4 && pkt[9] == IPPROTO_UDP)
		c = 0xffff; /* UDP sends a computed 0 as all ones */
	memcpy(pkt + start + off, &c, 2);
	return 0;
}

static size_t seg_stride(const struct segs *o, size_t len)
{
	return (o->headroom + len + SEG_ALIGN - 1) & ~(size_t)(SEG_ALIGN - 1);
}

static uint8_t *seg_next(struct segs *o)
{
	return o->out + o->used + o->headroom;
}

static void seg_push(struct segs *o, size_t len)
{
	o->offs[o->n] = (int32_t)(o->used + o->headroom);
	o->lens[o->n] = (int32_t)len;
	o->n++;
	o->used += seg_stride(o, len);
}

/* ---- Reads: TSO super-packets cut into segments, partial checksums completed ------------ */

int seg_emit(const uint8_t *p, size_t n, struct segs *o)
{
	const uint8_t *pkt = p + VNET_HLEN;
	size_t len, ihl, tot, thl, hdr, payload, mss, nsegs, need, i;
	uint32_t seq;
	uint16_t id;
	uint8_t tflags;

	if (n < VNET_HLEN)
		return -1;
	len = n - VNET_HLEN;
	if (p[1] == VIRTIO_NET_HDR_GSO_NONE) {
		uint8_t *d;
		if (o->n >= o->max || o->used + seg_stride(o, len) > o->cap)
			return -2;
		d = seg_next(o);
		memcpy(d, pkt, len);
		if ((p[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM) && csum_complete(d, len, rdn16(p + 6), rdn16(p + 8)))
			return -1;
		seg_push(o, len);
		return 0;
	}
	/* Only TSO4 was offered (no ECN, UFO, TSO6): anything else is not ours to cut. */
	if (p[1] != VIRTIO_NET_HDR_GSO_TCPV4 || len < 20 || pkt[0] >> 4 != 4)
		return -1;
	ihl = (size_t)(pkt[0] & 15) * 4;
	tot = rd16(pkt + 2);
	if (ihl < 20 || tot > len || tot < ihl + 20 || pkt[9] != IPPROTO_TCP || (rd16(pkt + 6) & 0x3fff))
		return -1;
	thl = (size_t)(pkt[ihl + 12] >> 4) * 4;
	hdr = ihl + thl;
	mss = rdn16(p + 4);
	if (thl < 20 || hdr > tot || mss == 0)
		return -1;
	payload = tot - hdr;
	nsegs = payload ? (payload + mss - 1) / mss : 1;
	need = (nsegs - 1) * seg_stride(o, hdr + mss) + seg_stride(o, hdr + payload - (nsegs - 1) * mss);
	if (o->n + nsegs > o->max || o->used + need > o->cap)
		return -2;
	id = rd16(pkt + 4);
	seq = rd32(pkt + ihl + 4);
	tflags = pkt[ihl + 13];
	for (i = 0; i < nsegs; i++) {
		size_t plen = i + 1 < nsegs ? mss : payload - i * mss;
		uint8_t *d = seg_next(o), *th = d + ihl;
		uint8_t f = tflags;
		uint16_t c;
		memcpy(d, pkt, hdr);
		memcpy(d + hdr, pkt + hdr + i * mss, plen);
		wr16(d + 2, (uint32_t)(hdr + plen));
		wr16(d + 4, (uint16_t)(id + i));
		ip_csum(d, ihl);
		wr32(th + 4, seq + (uint32_t)(i * mss));
		if (i + 1 < nsegs)
			f &= (uint8_t)~(TH_FIN | TH_PSH);
		if (i > 0)
			f &= (uint8_t)~TH_CWR;
		th[13] = f;
		th[16] = th[17] = 0;
		c = (uint16_t)~csum_fold(csum_add(th, thl + plen, pseudo_sum(d, IPPROTO_TCP, (uint32_t)(thl + plen))));
		memcpy(th + 16, &c, 2);
		seg_push(o, hdr + plen);
	}
	return 0;
}

/* ---- Writes: GRO's rules, runs of segments merged into one GSO_TCPV4 write -------------- */

/*
 * May this packet be merged with others? JS gave it no virtio_net_hdr of its own (a full
 * checksum, not a super-packet); IPv4 without options, not a fragment; TCP with payload and
 * only ACK (ECE allowed) plus maybe PSH/FIN; IP and TCP checksums verified.
 */
static int mergeable(uint8_t *v, size_t n, struct pk *k)
{
	static const uint8_t zero[VNET_HLEN];
	uint8_t *ip = v + VNET_HLEN;
	size_t tot, thl;

	if (n < VNET_HLEN + 40 || memcmp(v, zero, VNET_HLEN) != 0)
		return 0;
	if (ip[0] != 0x45 || ip[9] != IPPROTO_TCP || (rd16(ip + 6) & 0x3fff))
		return 0;
	tot = rd16(ip + 2);
	thl = (size_t)(ip[32] >> 4) * 4;
	if (tot > n - VNET_HLEN || thl < 20 || 20 + thl >= tot)
		return 0;
	if ((ip[33] & (TH_SYN | TH_RST | TH_URG | TH_CWR)) || !(ip[33] & TH_ACK))
		return 0;
	if (csum_fold(csum_add(ip, 20, 0)) != 0xffff)
		return 0;
	if (csum_fold(csum_add(ip + 20, tot - 20, pseudo_sum(ip, IPPROTO_TCP, (uint32_t)(tot - 20)))) != 0xffff)
		return 0;
	k->v = v;
	k->ip = ip;
	k->tot = tot;
	k->thl = thl;
	k->plen = tot - 20 - thl;
	k->seq = rd32(ip + 24);
	k->flags = ip[33];
	return 1;
}

/* Does b continue the run a (first) .. l (last so far, the run's k-th packet)? GRO's rules. */
static int continues(const struct pk *a, const struct pk *l, size_t k, size_t total, const struct pk *b)
{
	const uint8_t *x = a->ip, *y = b->ip;
	uint16_t ida = rd16(x + 4), idb = rd16(y + 4);

	if (l->plen != a->plen || (l->flags & (TH_PSH | TH_FIN)) || b->plen > a->plen)
		return 0;
	if (20 + a->thl + total + b->plen > MAX_IPV4)
		return 0;
	if (x[1] != y[1] || x[8] != y[8] || ((x[6] ^ y[6]) & IP_DF_HI) || memcmp(x + 12, y + 12, 8) != 0)
		return 0;
	if (idb != (uint16_t)(ida + k) && !((y[6] & IP_DF_HI) && idb == ida))
		return 0;
	if (b->thl != a->thl || memcmp(x + 20, y + 20, 4) != 0 || b->seq != l->seq + (uint32_t)l->plen ||
	    memcmp(x + 28, y + 28, 4) != 0 || ((a->flags ^ b->flags) & (uint8_t)~(TH_PSH | TH_FIN)))
		return 0;
	return a->thl == 20 || memcmp(x + 40, y + 40, a->thl - 20) == 0;
}

size_t coalesce_run(uint8_t *buf, size_t buflen, const int32_t *offs, const int32_t *lens, size_t i, size_t count,
		    struct pk run[MAX_MERGE])
{
	size_t k, total;

	if (!mergeable(buf + offs[i], (size_t)lens[i], &run[0]) || (run[0].flags & (TH_PSH | TH_FIN)))
		return 0;
	total = run[0].plen;
	for (k = 1; i + k < count && k < MAX_MERGE; k++) {
		size_t j = i + k;
		if (!item_in(offs[j], lens[j], buflen) || !mergeable(buf + offs[j], (size_t)lens[j], &run[k]) ||
		    !continues(&run[0], &run[k - 1], k, total, &run[k]))
			break;
		total += run[k].plen;
	}
	return k;
}

size_t gso_prepare(struct pk run[MAX_MERGE], size_t k, struct iovec iov[MAX_MERGE])
{
	uint8_t *v = run[0].v, *ip = run[0].ip;
	size_t total = 0, m;
	uint16_t c;

	for (m = 0; m < k; m++)
		total += run[m].plen;
	iov[0].iov_base = v;
	iov[0].iov_len = VNET_HLEN + run[0].tot;
	if (k == 1)
		return VNET_HLEN + run[0].tot;
	/* One super-packet: the first packet's headers, everyone's payload in order. */
	wr16(ip + 2, (uint32_t)(20 + run[0].thl + total));
	ip_csum(ip, 20);
	ip[33] |= run[k - 1].flags & (TH_PSH | TH_FIN);
	c = csum_fold(pseudo_sum(ip, IPPROTO_TCP, (uint32_t)(run[0].thl + total)));
	memcpy(ip + 36, &c, 2);
	v[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	v[1] = VIRTIO_NET_HDR_GSO_TCPV4;
	wrn16(v + 2, (uint16_t)(20 + run[0].thl));
	wrn16(v + 4, (uint16_t)run[0].plen);
	wrn16(v + 6, 20);
	wrn16(v + 8, 16);
	for (m = 1; m < k; m++) {
		iov[m].iov_base = run[m].ip + 20 + run[m].thl;
		iov[m].iov_len = run[m].plen;
	}
	return VNET_HLEN + 20 + run[0].thl + total;
}
