/*
 * podnet-tun.node: the userspace datapath's syscall and offload shim (N-API, C).
 *
 * It opens the TUN device and the raw IPPROTO_IPIP socket and moves many packets per
 * JS->native crossing (a read() loop on the TUN, which has no multi-packet call;
 * recvmmsg/sendmmsg on the raw socket). Which peer, which checks, which outer header -- all of
 * that is TypeScript (ipip-codec.ts, packet-worker.ts).
 *
 * It also does the TUN's offload mechanics, which are byte work the kernel would otherwise do
 * per packet and which JS does ~20x slower (checksums): with TUNSETOFFLOAD(CSUM|TSO4) the
 * kernel hands the TUN reader whole 64 KB TCP super-packets and unchecksummed packets, and
 * accepts GSO_TCPV4 super-packets back. The shim
 *   - on read, turns what the kernel hands over back into exactly what it would have handed
 *     over without offloads: TSO super-packets cut into gso_size segments (IP total length,
 *     ID + i, header checksum; TCP seq + i*gso_size, FIN/PSH only on the last, CWR only on the
 *     first, full checksum), partial checksums completed. TypeScript then treats every
 *     segment as an ordinary packet (peer lookup, checks, outer header policy), unchanged;
 *   - on write, merges runs of consecutive in-order segments of one TCP flow (GRO's rules:
 *     same addresses, TOS, TTL, DF, ports, ack, options; contiguous seq; IDs counting up;
 *     equal sizes but a shorter last one; only ACK, plus PSH/FIN ending a run) into one
 *     GSO_TCPV4 write (writev: virtio_net_hdr + first packet + the others' payloads, no copy),
 *     after verifying every segment's TCP checksum (as GRO does: a merged packet gets a fresh
 *     checksum, so a corrupt segment must not be merged). A verified packet written alone is
 *     marked DATA_VALID. Packets JS already gave a virtio_net_hdr (partial checksums and
 *     super-packets from offloading peers) are written as they are.
 *
 * Buffers are caller-owned Node Buffers/TypedArrays, so nothing is allocated per packet and the
 * worker builds headers in place around the payload.
 *
 *   openTun(name, vnetHdr, offload?) -> fd IFF_TUN | IFF_NO_PI [| IFF_VNET_HDR], non-blocking;
 *                                          attaches to the existing persistent device by name;
 *                                          offload (needs vnetHdr): TUNSETOFFLOAD CSUM|TSO4
 *   openRaw(localAddr, bufBytes) -> fd    SOCK_RAW IPPROTO_IPIP, IP_HDRINCL, bound to localAddr,
 *                                          SO_RCVBUFFORCE/SO_SNDBUFFORCE (SO_*BUF as fallback)
 *   poll(fdA, fdB, timeoutMs) -> mask     1: A readable, 2: B readable, 4: A error, 8: B error
 *   readMany(fd, buf, slot, off, max, lens) -> n     read() until EAGAIN or max; packet i lands
 *                                          at buf[i*slot+off], its length in lens[i]
 *   readSegments(fd, scratch, state, out, headroom, maxReads, offs, lens) -> n
 *                                          read() [virtio_net_hdr | packet] into scratch until
 *                                          EAGAIN, maxReads or out is full; each packet's
 *                                          segments land in out, segment i at offs[i] with
 *                                          headroom free bytes before it, length lens[i].
 *                                          state (Int32Array(2 or 3)): [0] a packet left in
 *                                          scratch for the next call (out was full), [1] +=
 *                                          packets dropped as malformed, [2] += reads
 *   segment(src, off, len, out, headroom, offs, lens) -> n   the same for one [vnet | packet]
 *                                          at src[off..off+len) (-1: malformed, -2: no room)
 *   writeMany(fd, buf, offs, lens, n) -> ok          write() each [offs[i], offs[i]+lens[i])
 *   writeCoalesced(fd, buf, offs, lens, n, stats?) -> ok   like writeMany (each item is
 *                                          [virtio_net_hdr | packet]) but merging as above;
 *                                          ok counts input packets; stats (Int32Array(2)),
 *                                          if given, gets [0] += writes, [1] += packets merged
 *   recvMany(fd, buf, slot, max, lens, srcs) -> n    recvmmsg(MSG_DONTWAIT); srcs[i] = source
 *                                          IPv4 address as a host-order uint32
 *   sendMany(fd, buf, offs, lens, dsts, n) -> ok     sendmmsg(MSG_DONTWAIT); dsts[i] host-order
 *   close(fd)
 *
 * Errors opening things throw (with errno text); per-packet errors are counted by returning
 * fewer than asked (the worker counts the difference as drops). Negative returns are -errno.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_BATCH 256
#define VNET_HLEN 10 /* struct virtio_net_hdr; native byte order (the TUN's legacy default) */

static napi_value throw_errno(napi_env env, const char *what, int err)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "%s: %s", what, strerror(err));
	napi_throw_error(env, NULL, msg);
	return NULL;
}

static napi_value make_int(napi_env env, int64_t v)
{
	napi_value r;
	napi_create_int64(env, v, &r);
	return r;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv)
{
	size_t argc = want;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
		napi_throw_type_error(env, NULL, "missing arguments");
		return -1;
	}
	return 0;
}

static int get_i32(napi_env env, napi_value v, int32_t *out)
{
	if (napi_get_value_int32(env, v, out) != napi_ok) {
		napi_throw_type_error(env, NULL, "expected a number");
		return -1;
	}
	return 0;
}

/* A Buffer or any TypedArray: its bytes. */
static int get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len)
{
	bool is;
	if (napi_is_buffer(env, v, &is) == napi_ok && is) {
		void *d;
		if (napi_get_buffer_info(env, v, &d, len) != napi_ok)
			return -1;
		*data = d;
		return 0;
	}
	if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
		napi_typedarray_type t;
		size_t n, off;
		void *d;
		napi_value ab;
		if (napi_get_typedarray_info(env, v, &t, &n, &d, &ab, &off) != napi_ok)
			return -1;
		*data = d;
		*len = n; /* elements, checked by the typed getters below */
		return 0;
	}
	napi_throw_type_error(env, NULL, "expected a Buffer");
	return -1;
}

static int get_typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *n)
{
	napi_typedarray_type t;
	size_t off;
	napi_value ab;
	bool is;
	if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
	    napi_get_typedarray_info(env, v, &t, n, data, &ab, &off) != napi_ok || t != want) {
		napi_throw_type_error(env, NULL, want == napi_int32_array ? "expected an Int32Array" : "expected a Uint32Array");
		return -1;
	}
	return 0;
}

static napi_value js_open_tun(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	char name[IFNAMSIZ + 1];
	size_t len, argc = 3;
	bool vnet = false, offload = false;
	struct ifreq ifr;
	int fd;

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
		napi_throw_type_error(env, NULL, "missing arguments");
		return NULL;
	}
	if (argc > 2)
		napi_get_value_bool(env, argv[2], &offload);
	if (napi_get_value_string_utf8(env, argv[0], name, sizeof(name), &len) != napi_ok || len == 0 || len >= IFNAMSIZ) {
		napi_throw_type_error(env, NULL, "openTun: bad device name");
		return NULL;
	}
	napi_get_value_bool(env, argv[1], &vnet);
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return throw_errno(env, "open /dev/net/tun", errno);
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, name, len);
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;
		close(fd);
		return throw_errno(env, "TUNSETIFF", e);
	}
	if (vnet && offload) {
		int hsz = VNET_HLEN;
		/* The TUN's features belong to the device: whoever attaches next sets them again. */
		if (ioctl(fd, TUNSETVNETHDRSZ, &hsz) < 0 || ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4) < 0) {
			int e = errno;
			close(fd);
			return throw_errno(env, "TUNSETOFFLOAD", e);
		}
	}
	return make_int(env, fd);
}

static napi_value js_open_raw(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	char addr[64];
	size_t len;
	int32_t bufbytes;
	struct sockaddr_in sin;
	int fd, one = 1;

	if (get_args(env, info, 2, argv))
		return NULL;
	if (napi_get_value_string_utf8(env, argv[0], addr, sizeof(addr), &len) != napi_ok) {
		napi_throw_type_error(env, NULL, "openRaw: bad address");
		return NULL;
	}
	if (get_i32(env, argv[1], &bufbytes))
		return NULL;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		napi_throw_type_error(env, NULL, "openRaw: not an IPv4 address");
		return NULL;
	}
	fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_IPIP);
	if (fd < 0)
		return throw_errno(env, "socket(AF_INET, SOCK_RAW, IPPROTO_IPIP)", errno);
	if (setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof(one)) < 0) {
		int e = errno;
		close(fd);
		return throw_errno(env, "IP_HDRINCL", e);
	}
	if (bufbytes > 0) {
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufbytes, sizeof(bufbytes)) < 0)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufbytes, sizeof(bufbytes));
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufbytes, sizeof(bufbytes)) < 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufbytes, sizeof(bufbytes));
	}
	/* Bound to the node's address: only protocol-4 packets addressed to it are queued here. */
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		int e = errno;
		close(fd);
		return throw_errno(env, "bind", e);
	}
	return make_int(env, fd);
}

static napi_value js_poll(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	int32_t a, b, timeout;
	struct pollfd p[2];
	int r, mask = 0;

	if (get_args(env, info, 3, argv) || get_i32(env, argv[0], &a) || get_i32(env, argv[1], &b) ||
	    get_i32(env, argv[2], &timeout))
		return NULL;
	p[0].fd = a;
	p[0].events = POLLIN;
	p[0].revents = 0;
	p[1].fd = b;
	p[1].events = POLLIN;
	p[1].revents = 0;
	r = poll(p, 2, timeout);
	if (r < 0)
		return make_int(env, errno == EINTR ? 0 : -errno);
	if (p[0].revents & POLLIN)
		mask |= 1;
	if (p[1].revents & POLLIN)
		mask |= 2;
	if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL))
		mask |= 4;
	if (p[1].revents & (POLLERR | POLLHUP | POLLNVAL))
		mask |= 8;
	return make_int(env, mask);
}

static napi_value js_read_many(napi_env env, napi_callback_info info)
{
	napi_value argv[6];
	int32_t fd, slot, off, max;
	uint8_t *buf;
	size_t buflen, nlens;
	int32_t *lens;
	int i;

	if (get_args(env, info, 6, argv) || get_i32(env, argv[0], &fd) || get_bytes(env, argv[1], &buf, &buflen) ||
	    get_i32(env, argv[2], &slot) || get_i32(env, argv[3], &off) || get_i32(env, argv[4], &max) ||
	    get_typed(env, argv[5], napi_int32_array, (void **)&lens, &nlens))
		return NULL;
	if (slot <= off || off < 0 || max < 0 || (size_t)max > nlens || (size_t)max * (size_t)slot > buflen) {
		napi_throw_range_error(env, NULL, "readMany: buffer too small for max slots");
		return NULL;
	}
	for (i = 0; i < max; i++) {
		ssize_t n = read(fd, buf + (size_t)i * slot + off, (size_t)(slot - off));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (i == 0 && errno != EAGAIN)
				return make_int(env, -errno);
			break;
		}
		lens[i] = (int32_t)n;
	}
	return make_int(env, i);
}

static napi_value js_write_many(napi_env env, napi_callback_info info)
{
	napi_value argv[5];
	int32_t fd, count, *offs, *lens;
	uint8_t *buf;
	size_t buflen, noffs, nlens;
	int i, ok = 0;

	if (get_args(env, info, 5, argv) || get_i32(env, argv[0], &fd) || get_bytes(env, argv[1], &buf, &buflen) ||
	    get_typed(env, argv[2], napi_int32_array, (void **)&offs, &noffs) ||
	    get_typed(env, argv[3], napi_int32_array, (void **)&lens, &nlens) || get_i32(env, argv[4], &count))
		return NULL;
	if (count < 0 || (size_t)count > noffs || (size_t)count > nlens) {
		napi_throw_range_error(env, NULL, "writeMany: count exceeds arrays");
		return NULL;
	}
	for (i = 0; i < count; i++) {
		ssize_t n;
		if (offs[i] < 0 || lens[i] < 0 || (size_t)offs[i] + (size_t)lens[i] > buflen)
			continue;
		do
			n = write(fd, buf + offs[i], (size_t)lens[i]);
		while (n < 0 && errno == EINTR);
		if (n == lens[i])
			ok++;
	}
	return make_int(env, ok);
}

/* ---- Offloads: segmentation of TSO reads, checksums, coalescing into GSO writes ----------- */

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10
#define TH_URG 0x20
#define TH_CWR 0x80
#define IP_DF_HI 0x40       /* DF in the high byte of frag_off */
#define SEG_ALIGN 16
#define MAX_MERGE 64        /* packets per GSO write (iovecs) */
#define MAX_IPV4 65535

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

/* Where segments go: out[used..cap), segment i at offs[i] (after headroom bytes), lens[i]. */
struct segs {
	uint8_t *out;
	size_t cap, used, headroom;
	int32_t *offs, *lens;
	size_t max, n;
};

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

/*
 * One [virtio_net_hdr | packet] as the TUN hands it over, appended to o as the packets the
 * kernel would have handed over without offloads. 0: done; -1: malformed (nothing appended);
 * -2: does not fit in what is left of o (nothing appended).
 */
static int seg_emit(const uint8_t *p, size_t n, struct segs *o)
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

static int get_segs(napi_env env, napi_value out, napi_value headroom, napi_value offs, napi_value lens, struct segs *o)
{
	int32_t h;
	size_t noffs, nlens;
	if (get_bytes(env, out, &o->out, &o->cap) || get_i32(env, headroom, &h) ||
	    get_typed(env, offs, napi_int32_array, (void **)&o->offs, &noffs) ||
	    get_typed(env, lens, napi_int32_array, (void **)&o->lens, &nlens))
		return -1;
	if (h < 0 || o->cap > INT32_MAX) {
		napi_throw_range_error(env, NULL, "bad headroom or out buffer");
		return -1;
	}
	o->headroom = (size_t)h;
	o->max = noffs < nlens ? noffs : nlens;
	o->used = 0;
	o->n = 0;
	return 0;
}

static napi_value js_read_segments(napi_env env, napi_callback_info info)
{
	napi_value argv[8];
	int32_t fd, max_reads, *state;
	uint8_t *scratch;
	size_t slen, nstate;
	struct segs o;
	int reads = 0, r;

	if (get_args(env, info, 8, argv) || get_i32(env, argv[0], &fd) || get_bytes(env, argv[1], &scratch, &slen) ||
	    get_typed(env, argv[2], napi_int32_array, (void **)&state, &nstate) ||
	    get_segs(env, argv[3], argv[4], argv[6], argv[7], &o) || get_i32(env, argv[5], &max_reads))
		return NULL;
	if (nstate < 2 || slen < VNET_HLEN + MAX_IPV4) {
		napi_throw_range_error(env, NULL, "readSegments: state needs 2 slots, scratch 65545 bytes");
		return NULL;
	}
	if (state[0] > 0) {
		/* Left over from the last call because out was full; out is empty now. */
		size_t pend = (size_t)state[0];
		state[0] = 0;
		if (pend > slen || seg_emit(scratch, pend, &o) < 0)
			state[1]++;
	}
	while (reads < max_reads) {
		ssize_t n = read(fd, scratch, slen);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && reads == 0 && o.n == 0)
				return make_int(env, -errno);
			break;
		}
		reads++;
		if (nstate > 2)
			state[2]++;
		r = seg_emit(scratch, (size_t)n, &o);
		if (r == -2 && o.n > 0) {
			state[0] = (int32_t)n;
			break;
		}
		if (r < 0)
			state[1]++;
	}
	return make_int(env, (int64_t)o.n);
}

static napi_value js_segment(napi_env env, napi_callback_info info)
{
	napi_value argv[7];
	int32_t off, len;
	uint8_t *src;
	size_t srclen;
	struct segs o;
	int r;

	if (get_args(env, info, 7, argv) || get_bytes(env, argv[0], &src, &srclen) || get_i32(env, argv[1], &off) ||
	    get_i32(env, argv[2], &len) || get_segs(env, argv[3], argv[4], argv[5], argv[6], &o))
		return NULL;
	if (off < 0 || len < 0 || (size_t)off + (size_t)len > srclen) {
		napi_throw_range_error(env, NULL, "segment: range outside the buffer");
		return NULL;
	}
	r = seg_emit(src + off, (size_t)len, &o);
	return make_int(env, r < 0 ? r : (int64_t)o.n);
}

/* A received packet as the worker laid it out: [virtio_net_hdr | IPv4 packet]. */
struct pk {
	uint8_t *v, *ip;
	size_t tot, thl, plen;
	uint32_t seq;
	uint8_t flags;
};

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

static ssize_t writev_all(int fd, struct iovec *iov, int n)
{
	ssize_t r;
	do
		r = writev(fd, iov, n);
	while (r < 0 && errno == EINTR);
	return r;
}

static napi_value js_write_coalesced(napi_env env, napi_callback_info info)
{
	napi_value argv[6];
	size_t argc = 6, buflen, noffs, nlens, nstats = 0;
	int32_t fd, count, *offs, *lens, *stats = NULL;
	uint8_t *buf;
	struct pk run[MAX_MERGE];
	struct iovec iov[MAX_MERGE + 1];
	int i = 0, ok = 0;

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) {
		napi_throw_type_error(env, NULL, "missing arguments");
		return NULL;
	}
	if (get_i32(env, argv[0], &fd) || get_bytes(env, argv[1], &buf, &buflen) ||
	    get_typed(env, argv[2], napi_int32_array, (void **)&offs, &noffs) ||
	    get_typed(env, argv[3], napi_int32_array, (void **)&lens, &nlens) || get_i32(env, argv[4], &count))
		return NULL;
	if (argc > 5) {
		napi_valuetype t;
		napi_typeof(env, argv[5], &t);
		if (t != napi_undefined && t != napi_null &&
		    get_typed(env, argv[5], napi_int32_array, (void **)&stats, &nstats))
			return NULL;
		if (nstats < 2)
			stats = NULL;
	}
	if (count < 0 || (size_t)count > noffs || (size_t)count > nlens) {
		napi_throw_range_error(env, NULL, "writeCoalesced: count exceeds arrays");
		return NULL;
	}
	while (i < count) {
		size_t k = 0, total = 0, m;
		ssize_t w;
		uint8_t *v, *ip;
		uint16_t c;

		if (offs[i] < 0 || lens[i] < 0 || (size_t)offs[i] + (size_t)lens[i] > buflen) {
			i++;
			continue;
		}
		if (!mergeable(buf + offs[i], (size_t)lens[i], &run[0]) || (run[0].flags & (TH_PSH | TH_FIN))) {
			/* Alone, as JS laid it out. */
			do
				w = write(fd, buf + offs[i], (size_t)lens[i]);
			while (w < 0 && errno == EINTR);
			if (w == lens[i])
				ok++;
			if (stats)
				stats[0]++;
			i++;
			continue;
		}
		total = run[0].plen;
		k = 1;
		while (i + (int)k < count && k < MAX_MERGE) {
			int j = i + (int)k;
			if (offs[j] < 0 || lens[j] < 0 || (size_t)offs[j] + (size_t)lens[j] > buflen ||
			    !mergeable(buf + offs[j], (size_t)lens[j], &run[k]) ||
			    !continues(&run[0], &run[k - 1], k, total, &run[k]))
				break;
			total += run[k].plen;
			k++;
		}
		v = run[0].v;
		ip = run[0].ip;
		if (k == 1) {
			w = writev_all(fd, (struct iovec[]){ { v, VNET_HLEN + run[0].tot } }, 1);
		} else {
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
			iov[0].iov_base = v;
			iov[0].iov_len = VNET_HLEN + run[0].tot;
			for (m = 1; m < k; m++) {
				iov[m].iov_base = run[m].ip + 20 + run[m].thl;
				iov[m].iov_len = run[m].plen;
			}
			w = writev_all(fd, iov, (int)k);
		}
		if (w == (ssize_t)(VNET_HLEN + 20 + run[0].thl + total))
			ok += (int)k;
		if (stats) {
			stats[0]++;
			if (k > 1)
				stats[1] += (int32_t)k;
		}
		i += (int)k;
	}
	return make_int(env, ok);
}

static napi_value js_recv_many(napi_env env, napi_callback_info info)
{
	napi_value argv[6];
	int32_t fd, slot, max, *lens;
	uint32_t *srcs;
	uint8_t *buf;
	size_t buflen, nlens, nsrcs;
	struct mmsghdr msgs[MAX_BATCH];
	struct iovec iov[MAX_BATCH];
	struct sockaddr_in from[MAX_BATCH];
	int i, n;

	if (get_args(env, info, 6, argv) || get_i32(env, argv[0], &fd) || get_bytes(env, argv[1], &buf, &buflen) ||
	    get_i32(env, argv[2], &slot) || get_i32(env, argv[3], &max) ||
	    get_typed(env, argv[4], napi_int32_array, (void **)&lens, &nlens) ||
	    get_typed(env, argv[5], napi_uint32_array, (void **)&srcs, &nsrcs))
		return NULL;
	if (max > MAX_BATCH)
		max = MAX_BATCH;
	if (slot <= 0 || max < 0 || (size_t)max > nlens || (size_t)max > nsrcs || (size_t)max * (size_t)slot > buflen) {
		napi_throw_range_error(env, NULL, "recvMany: buffer too small for max slots");
		return NULL;
	}
	memset(msgs, 0, sizeof(msgs[0]) * (size_t)max);
	for (i = 0; i < max; i++) {
		iov[i].iov_base = buf + (size_t)i * slot;
		iov[i].iov_len = (size_t)slot;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
		msgs[i].msg_hdr.msg_name = &from[i];
		msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
	}
	do
		n = recvmmsg(fd, msgs, (unsigned)max, MSG_DONTWAIT, NULL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return make_int(env, errno == EAGAIN ? 0 : -errno);
	for (i = 0; i < n; i++) {
		/* A packet longer than the slot is truncated (MSG_TRUNC): report it as such (len > slot). */
		lens[i] = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? slot + 1 : (int32_t)msgs[i].msg_len;
		srcs[i] = ntohl(from[i].sin_addr.s_addr);
	}
	return make_int(env, n);
}

static napi_value js_send_many(napi_env env, napi_callback_info info)
{
	napi_value argv[6];
	int32_t fd, count, *offs, *lens;
	uint32_t *dsts;
	uint8_t *buf;
	size_t buflen, noffs, nlens, ndsts;
	struct mmsghdr msgs[MAX_BATCH];
	struct iovec iov[MAX_BATCH];
	struct sockaddr_in to[MAX_BATCH];
	int i, ok = 0, done = 0;

	if (get_args(env, info, 6, argv) || get_i32(env, argv[0], &fd) || get_bytes(env, argv[1], &buf, &buflen) ||
	    get_typed(env, argv[2], napi_int32_array, (void **)&offs, &noffs) ||
	    get_typed(env, argv[3], napi_int32_array, (void **)&lens, &nlens) ||
	    get_typed(env, argv[4], napi_uint32_array, (void **)&dsts, &ndsts) || get_i32(env, argv[5], &count))
		return NULL;
	if (count < 0 || (size_t)count > noffs || (size_t)count > nlens || (size_t)count > ndsts) {
		napi_throw_range_error(env, NULL, "sendMany: count exceeds arrays");
		return NULL;
	}
	while (done < count) {
		int batch = 0, n;
		for (i = done; i < count && batch < MAX_BATCH; i++) {
			if (offs[i] < 0 || lens[i] <= 0 || (size_t)offs[i] + (size_t)lens[i] > buflen)
				break;
			memset(&msgs[batch], 0, sizeof(msgs[batch]));
			iov[batch].iov_base = buf + offs[i];
			iov[batch].iov_len = (size_t)lens[i];
			memset(&to[batch], 0, sizeof(to[batch]));
			to[batch].sin_family = AF_INET;
			to[batch].sin_addr.s_addr = htonl(dsts[i]);
			msgs[batch].msg_hdr.msg_iov = &iov[batch];
			msgs[batch].msg_hdr.msg_iovlen = 1;
			msgs[batch].msg_hdr.msg_name = &to[batch];
			msgs[batch].msg_hdr.msg_namelen = sizeof(to[batch]);
			batch++;
		}
		if (batch == 0) {
			done++; /* a bad slot: skip it */
			continue;
		}
		n = sendmmsg(fd, msgs, (unsigned)batch, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == ENOBUFS) {
				/* Socket buffer full: wait briefly for room rather than dropping a burst. */
				struct pollfd p = { .fd = fd, .events = POLLOUT, .revents = 0 };
				if (poll(&p, 1, 10) > 0)
					continue;
			}
			done++; /* this packet failed (e.g. EMSGSIZE, no route): skip it */
			continue;
		}
		ok += n;
		done += n;
	}
	return make_int(env, ok);
}

static napi_value js_close(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	int32_t fd;

	if (get_args(env, info, 1, argv) || get_i32(env, argv[0], &fd))
		return NULL;
	return make_int(env, close(fd) < 0 ? -errno : 0);
}

static napi_value init(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{ "openTun", NULL, js_open_tun, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "openRaw", NULL, js_open_raw, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "poll", NULL, js_poll, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "readMany", NULL, js_read_many, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "readSegments", NULL, js_read_segments, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "segment", NULL, js_segment, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "writeMany", NULL, js_write_many, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "writeCoalesced", NULL, js_write_coalesced, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "recvMany", NULL, js_recv_many, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "sendMany", NULL, js_send_many, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL },
	};
	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
