// SPDX-License-Identifier: Apache-2.0
/*
 * podnet-bpf: loads, attaches, adopts and feeds podnet's tc IPIP programs.
 * Not a daemon: every subcommand does its job on the pinned state and exits, so the agent can
 * crash or restart without touching traffic.
 *
 * Pinned state (all in --pin-dir, default /sys/fs/bpf/podnet, which must be on a bpffs):
 *   pn_peers pn_peer_addrs pn_pods pn_config pn_counters pn_drops pn_pmtu pn_drops_ext   maps (pinned by libbpf)
 *   pn_tun_egress pn_underlay_ingress                                the attached programs
 * Filters: tc clsact, handle PN_HANDLE, priority PN_PRIO, direct-action, on the tunnel's egress
 * and the underlay's ingress. Nothing else on those devices is touched.
 *
 * Exit codes: 0 ok, 1 failure (reason on stderr), 2 usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "../bpf/podnet-ipip.h"

/* Debian 12's linux-libc-dev (6.1) predates it; the probe asks the running kernel. */
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#endif

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif

#define PN_HANDLE 0x504e /* "PN" */
#define PN_PRIO 0x504e
#define PROG_EGRESS "pn_tun_egress"
#define PROG_INGRESS "pn_underlay_ingress"

static const char *MAP_NAMES[] = {"pn_peers", "pn_peer_addrs", "pn_pods", "pn_config", "pn_counters", "pn_drops", "pn_pmtu", "pn_drops_ext"};
#define N_MAPS (sizeof(MAP_NAMES) / sizeof(MAP_NAMES[0]))

static struct {
	const char *pin_dir;
	const char *object;
	const char *tunnel_dev;
	const char *underlay_dev;
	const char *local;
	bool json;
	bool verbose;
} opt = {.pin_dir = "/sys/fs/bpf/podnet"};

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("podnet-bpf: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Set while probing for a filter: "no such chain/qdisc" is an answer there, not an error. */
static bool quiet;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if ((level == LIBBPF_DEBUG || quiet) && !opt.verbose)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* ---------- parsing ---------- */

static bool parse_ipv4(const char *s, __u32 *out)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		return false;
	*out = a.s_addr;
	return true;
}

static bool parse_cidr(const char *s, struct pn_lpm_key *k)
{
	char buf[32];
	const char *slash = strchr(s, '/');
	char *end;
	long len;
	__u32 addr, mask;

	if (!slash || (size_t)(slash - s) >= sizeof(buf))
		return false;
	memcpy(buf, s, slash - s);
	buf[slash - s] = 0;
	if (!parse_ipv4(buf, &addr))
		return false;
	errno = 0;
	len = strtol(slash + 1, &end, 10);
	if (errno || *end || end == slash + 1 || len < 0 || len > 32)
		return false;
	mask = len == 0 ? 0 : htonl(~0u << (32 - len));
	if ((addr & ~mask) != 0)
		return false; /* host bits set: refuse rather than guess */
	k->prefixlen = (__u32)len;
	k->addr = addr;
	return true;
}

static bool parse_mac(const char *s, __u8 mac[6])
{
	unsigned int b[6];
	char tail;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
		return false;
	for (int i = 0; i < 6; i++)
		mac[i] = (__u8)b[i];
	return true;
}

static bool parse_u32(const char *s, __u32 *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v > UINT32_MAX)
		return false;
	*out = (__u32)v;
	return true;
}

static const char *ip_str(__u32 addr, char *buf)
{
	struct in_addr a = {.s_addr = addr};

	return inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
}

static void mac_str(const __u8 m[6], char *buf)
{
	sprintf(buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* Splits a line into at most max whitespace-separated fields; returns the count. */
static int split(char *line, char **f, int max)
{
	int n = 0;
	char *save = NULL;

	for (char *t = strtok_r(line, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
		if (n == 0 && t[0] == '#')
			return 0;
		if (n == max)
			return max + 1;
		f[n++] = t;
	}
	return n;
}

/* ---------- pinned state ---------- */

static void pin_path(char *buf, size_t n, const char *name)
{
	if ((size_t)snprintf(buf, n, "%s/%s", opt.pin_dir, name) >= n)
		die("pin path too long: %s/%s", opt.pin_dir, name);
}

static bool on_bpffs(const char *path)
{
	struct statfs st;

	return statfs(path, &st) == 0 && (unsigned long)st.f_type == BPF_FS_MAGIC;
}

/* Creates the pin dir (mkdir -p within a bpffs) and checks it is on a bpffs. */
static void ensure_pin_dir(void)
{
	char buf[PATH_MAX];

	if (strlen(opt.pin_dir) >= sizeof(buf))
		die("pin dir too long");
	strcpy(buf, opt.pin_dir);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0700) && errno != EEXIST)
			die("mkdir %s: %s", buf, strerror(errno));
		*p = '/';
	}
	if (mkdir(buf, 0700) && errno != EEXIST)
		die("mkdir %s: %s", buf, strerror(errno));
	if (!on_bpffs(buf))
		die("%s is not on a bpf filesystem; mount one first (mount -t bpf bpf /sys/fs/bpf)", buf);
}

static int open_map(const char *name, bool must)
{
	char path[PATH_MAX];
	int fd;

	pin_path(path, sizeof(path), name);
	fd = bpf_obj_get(path);
	if (fd < 0 && must)
		die("map %s is not pinned (%s); run `podnet-bpf attach` first", path, strerror(errno));
	return fd;
}

static __u32 obj_id(int fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return 0;
	return info.id;
}

struct prog_desc {
	__u32 id;
	char name[BPF_OBJ_NAME_LEN];
	__u8 tag[BPF_TAG_SIZE];
	__u32 map_ids[16];
	__u32 nr_map_ids;
};

static int prog_describe(int fd, struct prog_desc *d)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	memset(d, 0, sizeof(*d));
	info.nr_map_ids = 16;
	info.map_ids = (__u64)(unsigned long)d->map_ids;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	d->id = info.id;
	memcpy(d->name, info.name, sizeof(d->name));
	memcpy(d->tag, info.tag, sizeof(d->tag));
	d->nr_map_ids = info.nr_map_ids > 16 ? 16 : info.nr_map_ids;
	return 0;
}

static void tag_str(const __u8 tag[BPF_TAG_SIZE], char *buf)
{
	for (int i = 0; i < BPF_TAG_SIZE; i++)
		sprintf(buf + 2 * i, "%02x", tag[i]);
}

/* Every map the attached program uses must be one of our pinned maps: a same-tag program bound
 * to stale maps (pins removed and recreated behind its back) must be replaced, not adopted. */
static bool maps_match(const struct prog_desc *d, const __u32 *pinned_ids, int n)
{
	for (__u32 i = 0; i < d->nr_map_ids; i++) {
		bool found = false;

		for (int j = 0; j < n; j++)
			found |= d->map_ids[i] == pinned_ids[j];
		if (!found)
			return false;
	}
	return true;
}

/* ---------- tc ---------- */

static int tc_query(int ifindex, enum bpf_tc_attach_point ap, __u32 *prog_id)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = ap);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, q, .handle = PN_HANDLE, .priority = PN_PRIO);
	int err;

	quiet = true;
	err = bpf_tc_query(&hook, &q);
	quiet = false;
	if (!err)
		*prog_id = q.prog_id;
	/* No clsact qdisc (EINVAL/ENOENT from the kernel, depending on what is missing): none. */
	if (err == -EINVAL || err == -ENODEV)
		err = -ENOENT;
	return err;
}

static void pin_prog(int fd, const char *name)
{
	char path[PATH_MAX];
	int cur;

	pin_path(path, sizeof(path), name);
	cur = bpf_obj_get(path);
	if (cur >= 0) {
		bool same = obj_id(cur) == obj_id(fd);

		close(cur);
		if (same)
			return;
		if (unlink(path))
			die("unlink %s: %s", path, strerror(errno));
	}
	if (bpf_obj_pin(fd, path))
		die("pin %s: %s", path, strerror(errno));
}

/* Attaches (or adopts) one program; returns "adopted", "attached" or "replaced". */
static const char *attach_one(struct bpf_object *obj, const char *prog_name, const char *dev,
			      enum bpf_tc_attach_point ap, const __u32 *pinned_ids, int n_ids)
{
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, prog_name);
	int ifindex = if_nametoindex(dev);
	struct prog_desc want, have;
	__u32 cur_id = 0;
	int err, fd;

	if (!prog)
		die("object has no program %s", prog_name);
	if (!ifindex)
		die("device %s: %s", dev, strerror(errno));
	if (prog_describe(bpf_program__fd(prog), &want))
		die("prog info %s: %s", prog_name, strerror(errno));

	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = ap);
	quiet = true; /* EEXIST is expected and fine */
	err = bpf_tc_hook_create(&hook); /* the clsact qdisc; shared, so never destroyed by us */
	quiet = false;
	if (err && err != -EEXIST)
		die("create clsact on %s: %s", dev, strerror(-err));

	err = tc_query(ifindex, ap, &cur_id);
	if (!err) {
		fd = bpf_prog_get_fd_by_id(cur_id);
		if (fd >= 0 && !prog_describe(fd, &have) && !strcmp(have.name, want.name) &&
		    !memcmp(have.tag, want.tag, BPF_TAG_SIZE) && maps_match(&have, pinned_ids, n_ids)) {
			pin_prog(fd, prog_name); /* the running program stays; only the pin is refreshed */
			close(fd);
			return "adopted";
		}
		if (fd >= 0)
			close(fd);
	} else if (err != -ENOENT) {
		die("query tc filter on %s: %s", dev, strerror(-err));
	}

	/* tc replace at the same handle/priority swaps the program atomically: no gap. */
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, a, .handle = PN_HANDLE, .priority = PN_PRIO,
			    .prog_fd = bpf_program__fd(prog), .flags = BPF_TC_F_REPLACE);
	err = bpf_tc_attach(&hook, &a);
	if (err)
		die("attach %s to %s %s: %s", prog_name, dev, ap == BPF_TC_INGRESS ? "ingress" : "egress",
		    strerror(-err));
	pin_prog(bpf_program__fd(prog), prog_name);
	return cur_id ? "replaced" : "attached";
}

static void write_config(int fd, __u32 local, __u32 under_ifindex, __u32 tun_ifindex)
{
	struct pn_config cfg = {.local_addr = local, .underlay_ifindex = under_ifindex, .tunnel_ifindex = tun_ifindex};
	__u32 zero = 0;

	if (bpf_map_update_elem(fd, &zero, &cfg, BPF_ANY))
		die("write pn_config: %s", strerror(errno));
}

static int cmd_attach(void)
{
	__u32 local, pinned_ids[N_MAPS];
	struct bpf_object *obj;
	const char *r_egress, *r_ingress;
	int tun_ifindex, under_ifindex, err, n = 0;
	struct bpf_map *map;

	if (!opt.object || !opt.tunnel_dev || !opt.underlay_dev || !opt.local)
		die("attach needs --object, --tunnel-dev, --underlay-dev and --local");
	if (!parse_ipv4(opt.local, &local))
		die("--local %s is not an IPv4 address", opt.local);
	tun_ifindex = if_nametoindex(opt.tunnel_dev);
	if (!tun_ifindex)
		die("tunnel device %s: %s", opt.tunnel_dev, strerror(errno));
	under_ifindex = if_nametoindex(opt.underlay_dev);
	if (!under_ifindex)
		die("underlay device %s: %s", opt.underlay_dev, strerror(errno));
	ensure_pin_dir();

	DECLARE_LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = opt.pin_dir);
	obj = bpf_object__open_file(opt.object, &oo);
	if (!obj)
		die("open %s: %s", opt.object, strerror(errno));
	/* Reuses compatible pinned maps (peers, pods, counters survive), pins new ones. */
	err = bpf_object__load(obj);
	if (err)
		die("load %s: %s (if a pinned map's layout changed, run `podnet-bpf detach` first)",
		    opt.object, strerror(-err));

	bpf_object__for_each_map(map, obj) {
		if (n < (int)N_MAPS)
			pinned_ids[n++] = obj_id(bpf_map__fd(map));
	}
	map = bpf_object__find_map_by_name(obj, "pn_config");
	if (!map)
		die("object has no pn_config map");
	/* Config first: a freshly attached program must find it. In place: same values, no effect. */
	write_config(bpf_map__fd(map), local, under_ifindex, tun_ifindex);

	r_ingress = attach_one(obj, PROG_INGRESS, opt.underlay_dev, BPF_TC_INGRESS, pinned_ids, n);
	r_egress = attach_one(obj, PROG_EGRESS, opt.tunnel_dev, BPF_TC_EGRESS, pinned_ids, n);
	bpf_object__close(obj); /* the kernel keeps what is attached and pinned */

	if (opt.json)
		printf("{\"egress\":\"%s\",\"ingress\":\"%s\"}\n", r_egress, r_ingress);
	else
		printf("egress %s: %s\ningress %s: %s\n", opt.tunnel_dev, r_egress, opt.underlay_dev, r_ingress);
	return 0;
}

/* Removes our filter (only if it is ours) from one hook. */
static const char *detach_one(const char *dev, enum bpf_tc_attach_point ap)
{
	int ifindex = dev ? (int)if_nametoindex(dev) : 0;
	struct prog_desc d;
	__u32 id;
	int fd, err;

	if (!ifindex)
		return "absent";
	if (tc_query(ifindex, ap, &id))
		return "absent";
	fd = bpf_prog_get_fd_by_id(id);
	if (fd >= 0) {
		bool ours = !prog_describe(fd, &d) && !strncmp(d.name, "pn_", 3);

		close(fd);
		if (!ours) {
			fprintf(stderr, "podnet-bpf: filter %x:%x on %s is not podnet's (%s); left alone\n",
				PN_HANDLE, PN_PRIO, dev, d.name);
			return "foreign";
		}
	}
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = ap);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, o, .handle = PN_HANDLE, .priority = PN_PRIO);
	err = bpf_tc_detach(&hook, &o);
	if (err && err != -ENOENT)
		die("detach from %s: %s", dev, strerror(-err));
	return "detached";
}

static int cmd_detach(void)
{
	const char *pins[N_MAPS + 2];
	char path[PATH_MAX];
	const char *r_in, *r_eg;
	int n = 0;

	r_in = detach_one(opt.underlay_dev, BPF_TC_INGRESS);
	r_eg = detach_one(opt.tunnel_dev, BPF_TC_EGRESS);
	pins[n++] = PROG_EGRESS;
	pins[n++] = PROG_INGRESS;
	for (size_t i = 0; i < N_MAPS; i++)
		pins[n++] = MAP_NAMES[i];
	for (int i = 0; i < n; i++) {
		pin_path(path, sizeof(path), pins[i]);
		if (unlink(path) && errno != ENOENT)
			die("unlink %s: %s", path, strerror(errno));
	}
	if (rmdir(opt.pin_dir) && errno != ENOENT && errno != ENOTEMPTY)
		fprintf(stderr, "podnet-bpf: rmdir %s: %s\n", opt.pin_dir, strerror(errno));
	if (opt.json)
		printf("{\"egress\":\"%s\",\"ingress\":\"%s\"}\n", r_eg, r_in);
	else
		printf("egress: %s\ningress: %s\n", r_eg, r_in);
	return 0;
}

/* ---------- peers ---------- */

struct peer_entry {
	struct pn_lpm_key key;
	struct pn_peer val;
};

static int list_peers(int fd, struct peer_entry *out, int max)
{
	struct pn_lpm_key k, next;
	void *prev = NULL;
	int n = 0;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		if (n == max)
			die("more than %d peer entries", max);
		out[n].key = next;
		if (bpf_map_lookup_elem(fd, &next, &out[n].val) == 0)
			n++;
		k = next;
		prev = &k;
	}
	return n;
}

struct peer_maps {
	int lpm, addrs, counters;
};

static struct peer_maps open_peer_maps(void)
{
	struct peer_maps m = {open_map("pn_peers", true), open_map("pn_peer_addrs", true), open_map("pn_counters", true)};

	return m;
}

/* Index of a peer address; allocates the lowest free slot (with zeroed counters) if new. */
static __u32 peer_index(const struct peer_maps *m, __u32 addr)
{
	static bool used[PN_MAX_PEERS];
	__u32 k, next, v, *prev = NULL;
	int ncpu = libbpf_num_possible_cpus();
	void *zero;

	if (bpf_map_lookup_elem(m->addrs, &addr, &v) == 0)
		return v;
	memset(used, 0, sizeof(used));
	while (bpf_map_get_next_key(m->addrs, prev, &next) == 0) {
		if (bpf_map_lookup_elem(m->addrs, &next, &v) == 0 && v < PN_MAX_PEERS)
			used[v] = true;
		k = next;
		prev = &k;
	}
	for (v = 0; v < PN_MAX_PEERS && used[v]; v++)
		;
	if (v == PN_MAX_PEERS)
		die("no free peer slot (max %d)", PN_MAX_PEERS);
	if (ncpu < 1)
		die("cannot count possible CPUs");
	zero = calloc(ncpu, sizeof(struct pn_peer_counters));
	if (!zero || bpf_map_update_elem(m->counters, &v, zero, BPF_ANY))
		die("reset counters of slot %u: %s", v, strerror(errno));
	free(zero);
	if (bpf_map_update_elem(m->addrs, &addr, &v, BPF_NOEXIST))
		die("add peer address: %s", strerror(errno));
	return v;
}

/* Forgets peer addresses that no CIDR points at any more (their protocol 4 is then dropped). */
static void gc_peer_addrs(const struct peer_maps *m)
{
	static struct peer_entry cur[PN_MAX_PEERS];
	static __u32 stale[PN_MAX_PEERS];
	__u32 k, next, *prev = NULL;
	int n = list_peers(m->lpm, cur, PN_MAX_PEERS), ns = 0;

	while (bpf_map_get_next_key(m->addrs, prev, &next) == 0) {
		bool ref = false;

		for (int i = 0; i < n; i++)
			ref |= cur[i].val.addr == next;
		if (!ref && ns < PN_MAX_PEERS)
			stale[ns++] = next;
		k = next;
		prev = &k;
	}
	/* A path MTU learned for a peer goes with it (absent map: attached by an older loader). */
	int pmtu = open_map("pn_pmtu", false);

	for (int i = 0; i < ns; i++) {
		bpf_map_delete_elem(m->addrs, &stale[i]);
		if (pmtu >= 0)
			bpf_map_delete_elem(pmtu, &stale[i]);
	}
	if (pmtu >= 0)
		close(pmtu);
}

/* What pn_pmtu holds for a peer: its path MTU while younger than the kernel's route exception
 * (0 when none or expired), and the ICMPs counted. */
struct peer_pmtu {
	__u32 mtu;
	__u64 icmp_in, relayed;
};

static struct peer_pmtu peer_pmtu(int fd, __u32 addr)
{
	struct peer_pmtu out = {0};
	struct pn_pmtu v;
	struct timespec ts;

	if (fd < 0 || bpf_map_lookup_elem(fd, &addr, &v))
		return out;
	clock_gettime(CLOCK_MONOTONIC, &ts); /* bpf_ktime_get_ns()'s clock */
	if ((__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec - v.learned_ns < PN_PMTU_EXPIRES_NS)
		out.mtu = v.mtu;
	out.icmp_in = v.icmp_in;
	out.relayed = v.relayed;
	return out;
}

static void peer_set(const struct peer_maps *m, const struct pn_lpm_key *key, __u32 addr, int *added, int *changed)
{
	struct pn_peer cur, val = {.addr = addr};

	val.index = peer_index(m, addr);
	if (bpf_map_lookup_elem(m->lpm, key, &cur) == 0) {
		if (cur.addr == val.addr && cur.index == val.index)
			return;
		(*changed)++;
	} else {
		(*added)++;
	}
	/* An in-place update: lookups by other CPUs see the old or the new value, never nothing. */
	if (bpf_map_update_elem(m->lpm, key, &val, BPF_ANY))
		die("update pn_peers: %s", strerror(errno));
}

static int cmd_peer_set(char **argv)
{
	struct peer_maps m = open_peer_maps();
	struct pn_lpm_key key;
	int added = 0, changed = 0;
	__u32 addr;

	if (!parse_cidr(argv[0], &key))
		die("bad CIDR %s (host bits must be zero)", argv[0]);
	if (!parse_ipv4(argv[1], &addr))
		die("bad peer address %s", argv[1]);
	peer_set(&m, &key, addr, &added, &changed);
	gc_peer_addrs(&m);
	return 0;
}

static int cmd_peer_del(char **argv)
{
	struct peer_maps m = open_peer_maps();
	struct pn_lpm_key key;

	if (!parse_cidr(argv[0], &key))
		die("bad CIDR %s", argv[0]);
	if (bpf_map_delete_elem(m.lpm, &key) && errno != ENOENT)
		die("delete peer: %s", strerror(errno));
	gc_peer_addrs(&m);
	return 0;
}

static int cmd_peers_sync(void)
{
	static struct peer_entry want[PN_MAX_PEERS], cur[PN_MAX_PEERS];
	struct peer_maps m = open_peer_maps();
	int nw = 0, nc, added = 0, changed = 0, removed = 0, lineno = 0;
	char line[256], *f[3];

	while (fgets(line, sizeof(line), stdin)) {
		int nf;

		lineno++;
		nf = split(line, f, 2);
		if (nf == 0)
			continue;
		if (nf != 2)
			die("stdin line %d: want `CIDR PEER-ADDRESS`", lineno);
		if (nw == PN_MAX_PEERS)
			die("more than %d peers", PN_MAX_PEERS);
		if (!parse_cidr(f[0], &want[nw].key))
			die("stdin line %d: bad CIDR %s", lineno, f[0]);
		if (!parse_ipv4(f[1], &want[nw].val.addr))
			die("stdin line %d: bad address %s", lineno, f[1]);
		for (int i = 0; i < nw; i++)
			if (!memcmp(&want[i].key, &want[nw].key, sizeof(want[nw].key)))
				die("stdin line %d: CIDR %s given twice", lineno, f[0]);
		nw++;
	}
	/* Add and update first, then remove: peers that stay are never absent. */
	for (int i = 0; i < nw; i++)
		peer_set(&m, &want[i].key, want[i].val.addr, &added, &changed);
	nc = list_peers(m.lpm, cur, PN_MAX_PEERS);
	for (int i = 0; i < nc; i++) {
		bool keep = false;

		for (int j = 0; j < nw; j++)
			keep |= !memcmp(&cur[i].key, &want[j].key, sizeof(cur[i].key));
		if (!keep && bpf_map_delete_elem(m.lpm, &cur[i].key) == 0)
			removed++;
	}
	gc_peer_addrs(&m);
	printf("{\"added\":%d,\"changed\":%d,\"removed\":%d}\n", added, changed, removed);
	return 0;
}

static int cmd_peers(void)
{
	static struct peer_entry cur[PN_MAX_PEERS];
	struct peer_maps m = open_peer_maps();
	int n = list_peers(m.lpm, cur, PN_MAX_PEERS);
	char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];

	printf(opt.json ? "[" : "");
	for (int i = 0; i < n; i++) {
		ip_str(cur[i].key.addr, a);
		ip_str(cur[i].val.addr, b);
		if (opt.json)
			printf("%s{\"cidr\":\"%s/%u\",\"address\":\"%s\",\"index\":%u}", i ? "," : "", a,
			       cur[i].key.prefixlen, b, cur[i].val.index);
		else
			printf("%s/%u %s\n", a, cur[i].key.prefixlen, b);
	}
	printf(opt.json ? "]\n" : "");
	return 0;
}

/* ---------- pods ---------- */

static bool parse_pod(char **f, __u32 *ip, struct pn_pod *p)
{
	memset(p, 0, sizeof(*p));
	return parse_ipv4(f[0], ip) && parse_u32(f[1], &p->ifindex) && p->ifindex &&
	       parse_mac(f[2], p->pod_mac) && parse_mac(f[3], p->host_mac);
}

static int cmd_pod_set(char **argv)
{
	int fd = open_map("pn_pods", true);
	struct pn_pod p;
	__u32 ip;

	if (!parse_pod(argv, &ip, &p))
		die("usage: pod-set POD-IP HOST-VETH-IFINDEX POD-MAC HOST-MAC");
	if (bpf_map_update_elem(fd, &ip, &p, BPF_ANY))
		die("update pn_pods: %s", strerror(errno));
	return 0;
}

static int cmd_pod_del(char **argv)
{
	int fd = open_map("pn_pods", true);
	__u32 ip;

	if (!parse_ipv4(argv[0], &ip))
		die("bad pod IP %s", argv[0]);
	if (bpf_map_delete_elem(fd, &ip) && errno != ENOENT)
		die("delete pod: %s", strerror(errno));
	return 0;
}

static int cmd_pods_sync(void)
{
	static __u32 want_ip[PN_MAX_PODS], cur_ip[PN_MAX_PODS];
	static struct pn_pod want[PN_MAX_PODS];
	int fd = open_map("pn_pods", true), nw = 0, nc = 0, lineno = 0, set = 0, removed = 0;
	char line[256], *f[5];
	__u32 k, next, *prev = NULL;

	while (fgets(line, sizeof(line), stdin)) {
		int nf;

		lineno++;
		nf = split(line, f, 4);
		if (nf == 0)
			continue;
		/* Before storing: the map holds exactly PN_MAX_PODS, and so does this list. */
		if (nw == PN_MAX_PODS)
			die("more than %d pods", PN_MAX_PODS);
		if (nf != 4 || !parse_pod(f, &want_ip[nw], &want[nw]))
			die("stdin line %d: want `POD-IP HOST-VETH-IFINDEX POD-MAC HOST-MAC`", lineno);
		nw++;
	}
	/* Remove first, then add: a pod that stays is never absent either way, and a full desired
	 * set (PN_MAX_PODS) then fits beside no stale entry (the map refuses the 4097th with E2BIG). */
	while (bpf_map_get_next_key(fd, prev, &next) == 0 && nc < PN_MAX_PODS) {
		cur_ip[nc++] = next;
		k = next;
		prev = &k;
	}
	for (int i = 0; i < nc; i++) {
		bool keep = false;

		for (int j = 0; j < nw; j++)
			keep |= cur_ip[i] == want_ip[j];
		if (!keep && bpf_map_delete_elem(fd, &cur_ip[i]) == 0)
			removed++;
	}
	for (int i = 0; i < nw; i++) {
		struct pn_pod cur;

		if (bpf_map_lookup_elem(fd, &want_ip[i], &cur) == 0 && !memcmp(&cur, &want[i], sizeof(cur)))
			continue;
		if (bpf_map_update_elem(fd, &want_ip[i], &want[i], BPF_ANY))
			die("update pn_pods: %s", strerror(errno));
		set++;
	}
	printf("{\"set\":%d,\"removed\":%d}\n", set, removed);
	return 0;
}

static int cmd_pods(void)
{
	int fd = open_map("pn_pods", true), n = 0;
	__u32 k, next, *prev = NULL;
	char ip[INET_ADDRSTRLEN], pm[18], hm[18];
	struct pn_pod p;

	printf(opt.json ? "[" : "");
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		if (bpf_map_lookup_elem(fd, &next, &p) == 0) {
			ip_str(next, ip);
			mac_str(p.pod_mac, pm);
			mac_str(p.host_mac, hm);
			if (opt.json)
				printf("%s{\"ip\":\"%s\",\"ifindex\":%u,\"podMac\":\"%s\",\"hostMac\":\"%s\"}",
				       n++ ? "," : "", ip, p.ifindex, pm, hm);
			else
				printf("%s %u %s %s\n", ip, p.ifindex, pm, hm);
		}
		k = next;
		prev = &k;
	}
	printf(opt.json ? "]\n" : "");
	return 0;
}

/* ---------- counters, status, probe ---------- */

static int cmd_counters(void)
{
	static struct peer_entry cur[PN_MAX_PEERS];
	struct peer_maps m = open_peer_maps();
	int drops_fd = open_map("pn_drops", true), pmtu_fd = open_map("pn_pmtu", false), n, first = 1;
	int ext_fd = open_map("pn_drops_ext", false);
	int ncpu = libbpf_num_possible_cpus();
	struct pn_peer_counters *pc = calloc(ncpu, sizeof(*pc));
	__u64 *dc = calloc(ncpu, sizeof(*dc)), total = 0, sum[PN_DROP_ALL] = {0};
	__u32 k, next, idx, *prev = NULL;
	char a[INET_ADDRSTRLEN], c[INET_ADDRSTRLEN];

	if (!pc || !dc)
		die("out of memory");
	n = list_peers(m.lpm, cur, PN_MAX_PEERS);
	printf(opt.json ? "{\"peers\":[" : "peers:\n");
	while (bpf_map_get_next_key(m.addrs, prev, &next) == 0) {
		struct pn_peer_counters s = {0};
		struct peer_pmtu pm = peer_pmtu(pmtu_fd, next);
		int nc = 0;

		if (bpf_map_lookup_elem(m.addrs, &next, &idx) == 0 &&
		    bpf_map_lookup_elem(m.counters, &idx, pc) == 0) {
			for (int i = 0; i < ncpu; i++) {
				s.tx_packets += pc[i].tx_packets;
				s.tx_bytes += pc[i].tx_bytes;
				s.rx_packets += pc[i].rx_packets;
				s.rx_bytes += pc[i].rx_bytes;
			}
			ip_str(next, a);
			if (opt.json) {
				printf("%s{\"address\":\"%s\",\"index\":%u,\"cidrs\":[", first ? "" : ",", a, idx);
				for (int i = 0; i < n; i++)
					if (cur[i].val.addr == next)
						printf("%s\"%s/%u\"", nc++ ? "," : "", ip_str(cur[i].key.addr, c),
						       cur[i].key.prefixlen);
				printf("],\"txPackets\":%llu,\"txBytes\":%llu,\"rxPackets\":%llu,\"rxBytes\":%llu",
				       (unsigned long long)s.tx_packets, (unsigned long long)s.tx_bytes,
				       (unsigned long long)s.rx_packets, (unsigned long long)s.rx_bytes);
				if (pm.mtu)
					printf(",\"pathMtu\":%u", pm.mtu);
				printf(",\"fragNeededIn\":%llu,\"fragNeededRelayed\":%llu}", (unsigned long long)pm.icmp_in,
				       (unsigned long long)pm.relayed);
			} else {
				printf("  %s tx %llu pkts %llu bytes, rx %llu pkts %llu bytes", a,
				       (unsigned long long)s.tx_packets, (unsigned long long)s.tx_bytes,
				       (unsigned long long)s.rx_packets, (unsigned long long)s.rx_bytes);
				if (pm.mtu)
					printf(", path mtu %u", pm.mtu);
				printf(", frag-needed in %llu relayed %llu\n", (unsigned long long)pm.icmp_in,
				       (unsigned long long)pm.relayed);
			}
			first = 0;
		}
		k = next;
		prev = &k;
	}
	for (__u32 r = 0; r < PN_DROP_ALL; r++) {
		__u32 ext = r - PN_DROP_MAX;

		/* Reasons from PN_DROP_MAX on are in pn_drops_ext (absent before an attach made it: 0). */
		if (r < PN_DROP_MAX ? bpf_map_lookup_elem(drops_fd, &r, dc) == 0
				    : ext_fd >= 0 && bpf_map_lookup_elem(ext_fd, &ext, dc) == 0)
			for (int i = 0; i < ncpu; i++)
				sum[r] += dc[i];
		total += sum[r];
	}
	printf(opt.json ? "],\"drops\":{" : "drops:\n");
	first = 1;
	for (int r = 0; r < PN_DROP_ALL; r++) {
		if (!pn_drop_names[r])
			continue;
		if (opt.json)
			printf("%s\"%s\":%llu", first ? "" : ",", pn_drop_names[r], (unsigned long long)sum[r]);
		else
			printf("  %s %llu\n", pn_drop_names[r], (unsigned long long)sum[r]);
		first = 0;
	}
	if (opt.json)
		printf("},\"dropped\":%llu}\n", (unsigned long long)total);
	if (pmtu_fd >= 0)
		close(pmtu_fd);
	if (ext_fd >= 0)
		close(ext_fd);
	free(pc);
	free(dc);
	return 0;
}

static void status_hook(const char *label, const char *dev, enum bpf_tc_attach_point ap)
{
	int ifindex = dev ? (int)if_nametoindex(dev) : 0;
	struct prog_desc d = {0};
	char tag[2 * BPF_TAG_SIZE + 1] = "";
	__u32 id = 0;
	int fd;
	bool attached = ifindex && tc_query(ifindex, ap, &id) == 0;

	if (attached && (fd = bpf_prog_get_fd_by_id(id)) >= 0) {
		prog_describe(fd, &d);
		tag_str(d.tag, tag);
		close(fd);
	}
	printf("\"%s\":{\"dev\":\"%s\",\"present\":%s,\"attached\":%s,\"progId\":%u,\"name\":\"%s\",\"tag\":\"%s\"}",
	       label, dev ? dev : "", ifindex ? "true" : "false", attached ? "true" : "false", id, d.name, tag);
}

static int cmd_status(void)
{
	char path[PATH_MAX], tun[IF_NAMESIZE] = "", under[IF_NAMESIZE] = "", local[INET_ADDRSTRLEN] = "";
	const char *tdev = opt.tunnel_dev, *udev = opt.underlay_dev;
	struct pn_config cfg = {0};
	__u32 zero = 0;
	int pinned = 0, fd;

	for (size_t i = 0; i < N_MAPS; i++) {
		pin_path(path, sizeof(path), MAP_NAMES[i]);
		pinned += access(path, F_OK) == 0;
	}
	fd = open_map("pn_config", false);
	if (fd >= 0 && bpf_map_lookup_elem(fd, &zero, &cfg) == 0) {
		if (!tdev && cfg.tunnel_ifindex && if_indextoname(cfg.tunnel_ifindex, tun))
			tdev = tun;
		if (!udev && cfg.underlay_ifindex && if_indextoname(cfg.underlay_ifindex, under))
			udev = under;
		if (cfg.local_addr)
			ip_str(cfg.local_addr, local);
	}
	printf("{\"pinDir\":\"%s\",\"pinnedMaps\":%d,\"mapsExpected\":%zu,\"local\":\"%s\",", opt.pin_dir,
	       pinned, N_MAPS, local);
	status_hook("egress", tdev, BPF_TC_EGRESS);
	putchar(',');
	status_hook("ingress", udev, BPF_TC_INGRESS);
	printf("}\n");
	return 0;
}

/* `probe` exits 0 when tc BPF works here, PROBE_UNSUPPORTED when this kernel cannot do it, and
 * 1 when the probe itself failed (no permission, out of memory, a missing object): the agent
 * reports "not supported" and "probe failed" differently. */
#define PROBE_UNSUPPORTED 3

/* What the kernel answers for a program or map type it lacks, or bpf(2) compiled out: EINVAL,
 * E2BIG (an attribute it does not know), ENOSYS, EOPNOTSUPP and the kernel's ENOTSUPP (524). */
static bool errno_means_unsupported(int e)
{
	return e == EINVAL || e == E2BIG || e == ENOSYS || e == EOPNOTSUPP || e == 524;
}

static int probe_refused(const char *what, int e)
{
	fprintf(stderr, "podnet-bpf: cannot %s here: %s\n", what, strerror(e));
	return errno_means_unsupported(e) ? PROBE_UNSUPPORTED : 1;
}

/* What bpf_skb_adjust_room(skb, -20, BPF_ADJ_ROOM_MAC, flags) answers on an Ethernet + IPv4 +
 * IPv4 packet here: 0, or the helper's -errno; INT_MIN when the test program cannot run. */
static int adjust_room_answer(__u64 flags)
{
	struct bpf_insn insns[] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_2, .imm = -20},
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_3, .imm = BPF_ADJ_ROOM_MAC},
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_4, .imm = (__s32)flags},
		{.code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_skb_adjust_room},
		{.code = BPF_JMP | BPF_EXIT},
	};
	/* 14 Ethernet (IPv4 ethertype) + outer IPv4 (protocol 4) + inner IPv4 + 8 bytes. */
	unsigned char pkt[14 + 20 + 20 + 8] = {0};
	DECLARE_LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = pkt, .data_size_in = sizeof(pkt));
	int fd, err;

	pkt[12] = 0x08;
	pkt[14] = 0x45, pkt[14 + 3] = 48, pkt[14 + 8] = 64, pkt[14 + 9] = 4;
	pkt[34] = 0x45, pkt[34 + 3] = 28, pkt[34 + 8] = 64, pkt[34 + 9] = 17;
	fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "pn_probe_adj", "GPL", insns, sizeof(insns) / sizeof(insns[0]), NULL);
	if (fd < 0)
		return INT_MIN;
	err = bpf_prog_test_run_opts(fd, &run);
	close(fd);
	return err ? INT_MIN : (int)run.retval;
}

static int cmd_probe(void)
{
	/* r0 = TC_ACT_OK; exit */
	struct bpf_insn insns[] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0},
		{.code = BPF_JMP | BPF_EXIT},
	};
	DECLARE_LIBBPF_OPTS(bpf_map_create_opts, mo, .map_flags = BPF_F_NO_PREALLOC);
	int fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "pn_probe", "GPL", insns, 2, NULL);

	if (fd < 0)
		return probe_refused("load a tc BPF program", errno);
	close(fd);
	fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "pn_probe", sizeof(struct pn_lpm_key), sizeof(struct pn_peer), 1, &mo);
	if (fd < 0)
		return probe_refused("create an LPM_TRIE map", errno);
	close(fd);
	/* pn_underlay_ingress decapsulates with BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (Linux 6.3+). An older
	 * kernel loads and attaches the program but refuses every such call with EINVAL, so the
	 * datapath would encapsulate and never decapsulate: refuse it here, where `auto` can still
	 * pick another. Only that exact answer refuses (the call without the flag working), so a
	 * test run this kernel cannot do never blocks the datapath on its own. */
	int plain = adjust_room_answer(BPF_F_ADJ_ROOM_FIXED_GSO);
	int decap = adjust_room_answer(BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_DECAP_L3_IPV4);

	if (opt.verbose)
		fprintf(stderr, "podnet-bpf: probe: bpf_skb_adjust_room -20 answers %d, with DECAP_L3_IPV4 %d\n", plain, decap);
	if (plain == 0 && decap == -EINVAL) {
		fprintf(stderr, "podnet-bpf: cannot decapsulate in tc BPF here: this kernel's bpf_skb_adjust_room lacks "
				"BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (Linux 6.3 or newer)\n");
		return PROBE_UNSUPPORTED;
	}
	if (opt.object && access(opt.object, R_OK))
		die("BPF object %s: %s", opt.object, strerror(errno));
	printf("ok\n");
	return 0;
}

static void usage(FILE *f)
{
	fputs("usage: podnet-bpf [--pin-dir D] [--json] [-v] COMMAND ...\n"
	      "  probe [--object O]                 can tc BPF be loaded here? (exit 0; 3 + reason: not supported; 1 + reason: probe failed)\n"
	      "  attach --object O --tunnel-dev T --underlay-dev U --local A.B.C.D\n"
	      "                                     load/attach, or adopt what is pinned and attached\n"
	      "  detach [--tunnel-dev T] [--underlay-dev U]   remove podnet's filters and pins only\n"
	      "  status                             pins and filters, JSON\n"
	      "  peer-set CIDR ADDR | peer-del CIDR | peers-sync (stdin: CIDR ADDR) | peers\n"
	      "  pod-set IP IFINDEX PODMAC HOSTMAC | pod-del IP | pods-sync (stdin) | pods\n"
	      "  counters                           per-peer tx/rx and drops\n",
	      f);
}

/* Options may come before or after the command; everything else is positional. */
static char **parse_args(int argc, char **argv, int *npos)
{
	static const struct {
		const char *name;
		const char **dst;
	} valued[] = {
		{"--pin-dir", &opt.pin_dir},       {"--object", &opt.object}, {"--tunnel-dev", &opt.tunnel_dev},
		{"--underlay-dev", &opt.underlay_dev}, {"--local", &opt.local},
	};
	char **pos = calloc(argc + 1, sizeof(char *));
	int n = 0;

	if (!pos)
		die("out of memory");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool done = false;

		if (!strcmp(a, "--json")) { opt.json = true; continue; }
		if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) { opt.verbose = true; continue; }
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); exit(0); }
		for (size_t j = 0; j < sizeof(valued) / sizeof(valued[0]) && !done; j++) {
			size_t l = strlen(valued[j].name);

			if (!strcmp(a, valued[j].name)) {
				if (i + 1 >= argc) {
					fprintf(stderr, "podnet-bpf: %s needs a value\n", a);
					exit(2);
				}
				*valued[j].dst = argv[++i];
				done = true;
			} else if (!strncmp(a, valued[j].name, l) && a[l] == '=') {
				*valued[j].dst = a + l + 1;
				done = true;
			}
		}
		if (done)
			continue;
		if (a[0] == '-' && a[1] == '-') {
			fprintf(stderr, "podnet-bpf: unknown option %s\n", a);
			usage(stderr);
			exit(2);
		}
		pos[n++] = argv[i];
	}
	*npos = n;
	return pos;
}

int main(int argc, char **argv)
{
	const char *cmd;
	char **args;
	int nargs;

	args = parse_args(argc, argv, &nargs);
	if (nargs < 1) {
		usage(stderr);
		return 2;
	}
	cmd = args[0];
	args++;
	nargs--;
	libbpf_set_print(libbpf_print);

#define NEED(n)                                                                    \
	do {                                                                       \
		if (nargs != (n)) {                                                \
			fprintf(stderr, "podnet-bpf: %s takes %d argument(s)\n", cmd, n); \
			return 2;                                                  \
		}                                                                  \
	} while (0)

	if (!strcmp(cmd, "probe")) { NEED(0); return cmd_probe(); }
	if (!strcmp(cmd, "attach")) { NEED(0); return cmd_attach(); }
	if (!strcmp(cmd, "detach")) { NEED(0); return cmd_detach(); }
	if (!strcmp(cmd, "status")) { NEED(0); return cmd_status(); }
	if (!strcmp(cmd, "peer-set")) { NEED(2); return cmd_peer_set(args); }
	if (!strcmp(cmd, "peer-del")) { NEED(1); return cmd_peer_del(args); }
	if (!strcmp(cmd, "peers-sync")) { NEED(0); return cmd_peers_sync(); }
	if (!strcmp(cmd, "peers")) { NEED(0); return cmd_peers(); }
	if (!strcmp(cmd, "pod-set")) { NEED(4); return cmd_pod_set(args); }
	if (!strcmp(cmd, "pod-del")) { NEED(1); return cmd_pod_del(args); }
	if (!strcmp(cmd, "pods-sync")) { NEED(0); return cmd_pods_sync(); }
	if (!strcmp(cmd, "pods")) { NEED(0); return cmd_pods(); }
	if (!strcmp(cmd, "counters")) { NEED(0); return cmd_counters(); }
	fprintf(stderr, "podnet-bpf: unknown command %s\n", cmd);
	usage(stderr);
	return 2;
}
