/*
 * podnet-tun.node: the userspace datapath's N-API shim (C). This file is the glue and the
 * syscalls: it opens the TUN device and the raw IPPROTO_IPIP socket and moves many packets per
 * JS->native crossing (a read() loop on the TUN, which has no multi-packet call; recvmmsg/
 * sendmmsg on the raw socket). The TUN's offload byte work (TSO segmentation, checksums, GRO
 * merge rules) is in tun-offload.c. Which peer, which checks, which outer header -- all of that
 * is TypeScript (ipip-codec.ts, packet-worker.ts).
 *
 * The API (each call's arguments, units, return codes and errors) is documented once, in
 * agent/datapaths/userspace/shim.ts; keep it in step with init() below.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/errqueue.h>
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

#include "tun-offload.h"

#define MAX_BATCH 256

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

/* An optional Int32Array of counters at argv[i]: *stats stays NULL when it is absent
 * (undefined, null) or has fewer than `min` slots; -1 (a JS exception pending) when it is
 * there but not an Int32Array. */
static int get_optional_stats(napi_env env, size_t argc, napi_value *argv, size_t i, size_t min, int32_t **stats)
{
	napi_valuetype t;
	size_t n = 0;

	*stats = NULL;
	if (argc <= i || napi_typeof(env, argv[i], &t) != napi_ok || t == napi_undefined || t == napi_null)
		return 0;
	if (get_typed(env, argv[i], napi_int32_array, (void **)stats, &n))
		return -1;
	if (n < min)
		*stats = NULL;
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
	/* ICMP errors about what we sent (a router's "fragmentation needed") are queued for
	 * recvErrors; without it the kernel only updates its route cache and tells nobody. */
	if (setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof(one)) < 0) {
		int e = errno;
		close(fd);
		return throw_errno(env, "IP_RECVERR", e);
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
	size_t argc = 6, buflen, noffs, nlens;
	int32_t fd, count, *offs, *lens, *stats = NULL;
	uint8_t *buf;
	struct pk run[MAX_MERGE];
	struct iovec iov[MAX_MERGE];
	int i = 0, ok = 0;

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) {
		napi_throw_type_error(env, NULL, "missing arguments");
		return NULL;
	}
	if (get_i32(env, argv[0], &fd) || get_bytes(env, argv[1], &buf, &buflen) ||
	    get_typed(env, argv[2], napi_int32_array, (void **)&offs, &noffs) ||
	    get_typed(env, argv[3], napi_int32_array, (void **)&lens, &nlens) || get_i32(env, argv[4], &count))
		return NULL;
	if (get_optional_stats(env, argc, argv, 5, 2, &stats))
		return NULL;
	if (count < 0 || (size_t)count > noffs || (size_t)count > nlens) {
		napi_throw_range_error(env, NULL, "writeCoalesced: count exceeds arrays");
		return NULL;
	}
	while (i < count) {
		size_t k, want;
		ssize_t w;

		if (!item_in(offs[i], lens[i], buflen)) {
			i++;
			continue;
		}
		k = coalesce_run(buf, buflen, offs, lens, (size_t)i, (size_t)count, run);
		if (k == 0) {
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
		want = gso_prepare(run, k, iov);
		w = writev_all(fd, iov, (int)k);
		if (w == (ssize_t)want)
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
	napi_value argv[7];
	size_t argc = 7;
	int32_t fd, count, *offs, *lens, *stats = NULL;
	uint32_t *dsts;
	uint8_t *buf;
	size_t buflen, noffs, nlens, ndsts;
	struct mmsghdr msgs[MAX_BATCH];
	struct iovec iov[MAX_BATCH];
	struct sockaddr_in to[MAX_BATCH];
	int i, ok = 0, done = 0, retried = -1;

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 6) {
		napi_throw_type_error(env, NULL, "missing arguments");
		return NULL;
	}
	if (get_i32(env, argv[0], &fd) || get_bytes(env, argv[1], &buf, &buflen) ||
	    get_typed(env, argv[2], napi_int32_array, (void **)&offs, &noffs) ||
	    get_typed(env, argv[3], napi_int32_array, (void **)&lens, &nlens) ||
	    get_typed(env, argv[4], napi_uint32_array, (void **)&dsts, &ndsts) || get_i32(env, argv[5], &count))
		return NULL;
	if (get_optional_stats(env, argc, argv, 6, 1, &stats))
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
			/* IP_RECVERR makes every ICMP error about a packet we sent (to any peer) this
			 * socket's pending error (raw_err sets sk_err), and the next send, whatever its
			 * destination, fails with it once: sock_alloc_send_skb takes and clears it. The
			 * errno is the ICMP's (icmp_err_convert: EMSGSIZE, EHOSTUNREACH, ENOPROTOOPT...,
			 * any code a router or a forger sends), so it cannot tell a pending error from
			 * this packet's own failure: every failure is retried once, and only a second
			 * failure is the packet's. (A second socket for the errors would leave this one
			 * without a pending error, but would get a copy of every received protocol-4
			 * packet too.) A message that fails mid-batch (sendmmsg returns the count sent)
			 * starts the next call, and so may be tried three times: rare, and harmless. */
			if (retried != done) {
				retried = done;
				continue;
			}
			/* A DF packet above the path MTU the kernel learned (ip_finish_output refuses it
			 * and queues an ICMP error to this socket): counted apart from other failures. */
			if (errno == EMSGSIZE && stats)
				stats[0]++;
			done++; /* this packet failed (e.g. EMSGSIZE, no route): skip it */
			continue;
		}
		ok += n;
		done += n;
	}
	return make_int(env, ok);
}

static napi_value js_recv_errors(napi_env env, napi_callback_info info)
{
	napi_value argv[7];
	int32_t fd, slot, max, *lens, *meta;
	uint32_t *addrs;
	uint8_t *buf;
	size_t buflen, nlens, nmeta, naddrs;
	int i = 0;

	if (get_args(env, info, 7, argv) || get_i32(env, argv[0], &fd) || get_bytes(env, argv[1], &buf, &buflen) ||
	    get_i32(env, argv[2], &slot) || get_i32(env, argv[3], &max) ||
	    get_typed(env, argv[4], napi_int32_array, (void **)&lens, &nlens) ||
	    get_typed(env, argv[5], napi_int32_array, (void **)&meta, &nmeta) ||
	    get_typed(env, argv[6], napi_uint32_array, (void **)&addrs, &naddrs))
		return NULL;
	if (slot <= 0 || max < 0 || (size_t)max > nlens || (size_t)max * 5 > nmeta || (size_t)max * 2 > naddrs ||
	    (size_t)max * (size_t)slot > buflen) {
		napi_throw_range_error(env, NULL, "recvErrors: buffers too small for max errors");
		return NULL;
	}
	while (i < max) {
		struct sockaddr_in from;
		struct iovec iov = { .iov_base = buf + (size_t)i * slot, .iov_len = (size_t)slot };
		char ctl[CMSG_SPACE(sizeof(struct sock_extended_err) + sizeof(struct sockaddr_in)) + 64];
		struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = ctl, .msg_controllen = sizeof(ctl) };
		struct cmsghdr *c;
		ssize_t n;

		memset(&from, 0, sizeof(from));
		n = recvmsg(fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (i == 0 && errno != EAGAIN)
				return make_int(env, -errno);
			break;
		}
		lens[i] = (int32_t)n;
		memset(&meta[i * 5], 0, 5 * sizeof(int32_t));
		addrs[i * 2] = ntohl(from.sin_addr.s_addr);
		addrs[i * 2 + 1] = 0;
		for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			struct sock_extended_err ee;
			struct sockaddr_in off;
			if (c->cmsg_level != IPPROTO_IP || c->cmsg_type != IP_RECVERR ||
			    c->cmsg_len < CMSG_LEN(sizeof(ee)))
				continue;
			memcpy(&ee, CMSG_DATA(c), sizeof(ee));
			meta[i * 5] = (int32_t)ee.ee_errno;
			meta[i * 5 + 1] = ee.ee_origin;
			meta[i * 5 + 2] = ee.ee_type;
			meta[i * 5 + 3] = ee.ee_code;
			meta[i * 5 + 4] = (int32_t)ee.ee_info;
			if (c->cmsg_len >= CMSG_LEN(sizeof(ee) + sizeof(off))) {
				memcpy(&off, CMSG_DATA(c) + sizeof(ee), sizeof(off));
				if (off.sin_family == AF_INET)
					addrs[i * 2 + 1] = ntohl(off.sin_addr.s_addr);
			}
		}
		i++;
	}
	return make_int(env, i);
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
		{ "recvErrors", NULL, js_recv_errors, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL },
	};
	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
