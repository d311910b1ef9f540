// The native shim's surface, documented here only: syscalls, many packets per call
// (native/podnet-tun.c), and the TUN's offload mechanics (native/tun-offload.c: cutting TSO reads
// into segments, checksums, merging received segments into GSO writes); no policy.
// Loaded with process.dlopen from an explicit path, so the esbuild bundles leave it alone and
// it is found beside them wherever they are installed.
//
// Conventions: buffers are the caller's (Node Buffers/TypedArrays), so nothing is allocated per
// packet and the worker builds headers in place around the payload. Opening things throws an
// Error with the errno text; per-packet failures are counted by returning fewer than asked (the
// worker counts the difference as drops); other negative returns are -errno. Offsets, lengths
// and sizes are in bytes. virtio_net_hdr fields are in native byte order.

export interface TunShim {
  /**
   * Attaches to TUN device `name` (the existing persistent one, else a new one): IFF_TUN |
   * IFF_NO_PI [| IFF_VNET_HDR], non-blocking. Returns the fd.
   * `offload` (needs vnetHdr): TUNSETOFFLOAD CSUM|TSO4, so reads may be TSO super-packets and
   * partial checksums (use readSegments), and writes may be GSO_TCPV4 (writeCoalesced makes them).
   */
  openTun(name: string, vnetHdr: boolean, offload?: boolean): number;
  /**
   * SOCK_RAW IPPROTO_IPIP with IP_HDRINCL and IP_RECVERR (ICMP errors about what it sent are
   * queued for recvErrors; poll reports them as an error), bound to `local` (so only protocol-4
   * packets addressed to it are queued), non-blocking; buffers forced to `bufBytes` (SO_RCVBUFFORCE/SO_SNDBUFFORCE,
   * plain SO_*BUF when not permitted; 0 leaves them). Returns the fd.
   */
  openRaw(local: string, bufBytes: number): number;
  /** poll() both fds for input: 1 A readable, 2 B readable, 4 A error, 8 B error; < 0: -errno. */
  poll(fdA: number, fdB: number, timeoutMs: number): number;
  /** read() up to max packets; packet i at buf[i*slot+off], length lens[i]. < 0: -errno. */
  readMany(fd: number, buf: Buffer, slot: number, off: number, max: number, lens: Int32Array): number;
  /**
   * read() [virtio_net_hdr | packet] into `scratch` (>= 65545 bytes) up to maxReads times or until
   * EAGAIN or `out` is full, handing back what the kernel would have without offloads: TSO
   * super-packets cut into segments with their own IP length/ID/checksum and TCP seq/flags/
   * checksum, partial checksums completed. Segment i is at out[offs[i]..+lens[i]) with `headroom`
   * free bytes before it. state (Int32Array(2 or 3)): [0] a packet kept in scratch for the next
   * call, [1] += packets dropped as malformed, [2] += reads. Returns the number of segments; < 0: -errno.
   */
  readSegments(
    fd: number,
    scratch: Buffer,
    state: Int32Array,
    out: Buffer,
    headroom: number,
    maxReads: number,
    offs: Int32Array,
    lens: Int32Array,
  ): number;
  /** readSegments' cutting for one [virtio_net_hdr | packet] at src[off..off+len): segments, or -1 malformed, -2 no room. */
  segment(src: Uint8Array, off: number, len: number, out: Uint8Array, headroom: number, offs: Int32Array, lens: Int32Array): number;
  /** write() each buf[offs[i]..offs[i]+lens[i]); returns how many were written whole. */
  writeMany(fd: number, buf: Buffer, offs: Int32Array, lens: Int32Array, count: number): number;
  /**
   * Like writeMany for items [virtio_net_hdr | packet], but runs of consecutive in-order TCP
   * segments of one flow go as one GSO_TCPV4 write (writev: virtio_net_hdr + first packet + the
   * others' payloads, no copy). GRO's rules: same addresses, TOS, TTL, DF, ports, ack and
   * options; contiguous seq; IDs counting up (or equal with DF); equal payload sizes but a
   * shorter last one; only ACK (ECE allowed), PSH/FIN only ending a run; no IP options or
   * fragments; every segment's IP and TCP checksum verified first (the merged packet gets a fresh
   * checksum, so a corrupt segment must not be merged); at most 64 per write. Items that JS gave a
   * virtio_net_hdr of their own (partial checksums, super-packets) are written as they are. Returns
   * how many input packets were written; stats (Int32Array(2)) gets [0] += writes,
   * [1] += packets that went in merged writes.
   */
  writeCoalesced(fd: number, buf: Buffer, offs: Int32Array, lens: Int32Array, count: number, stats?: Int32Array): number;
  /** recvmmsg: packet i at buf[i*slot], lens[i] (> slot: truncated), srcs[i] host-order IPv4. */
  recvMany(fd: number, buf: Buffer, slot: number, max: number, lens: Int32Array, srcs: Uint32Array): number;
  /**
   * sendmmsg each buf[offs[i]..+lens[i]) to dsts[i] (host-order IPv4); returns how many were sent.
   * A failed packet is tried once more before it counts as failed: the failure may be the socket's
   * pending error from an ICMP error about an earlier packet (IP_RECVERR), which the failed call
   * cleared. stats (Int32Array(1)): [0] += packets refused with EMSGSIZE both times (DF above a
   * path MTU the kernel learned; it queues an ICMP error for recvErrors about each).
   */
  sendMany(fd: number, buf: Buffer, offs: Int32Array, lens: Int32Array, dsts: Uint32Array, count: number, stats?: Int32Array): number;
  /**
   * recvmsg(MSG_ERRQUEUE) up to max times: error i's payload at buf[i*slot..+lens[i]) (what the
   * kernel queued: for this HDRINCL socket, the quoted packet from its outer IP header on, cut at
   * slot), meta[i*5..+5) = its sock_extended_err [ee_errno, ee_origin (1 local, 2 ICMP), ee_type,
   * ee_code, ee_info (for "fragmentation needed": the next-hop MTU)], addrs[i*2] the quoted
   * packet's destination (host-order IPv4), addrs[i*2+1] the ICMP's sender (SO_EE_OFFENDER, 0 if
   * none). Returns how many were read (0: queue empty); < 0: -errno.
   */
  recvErrors(fd: number, buf: Buffer, slot: number, max: number, lens: Int32Array, meta: Int32Array, addrs: Uint32Array): number;
  close(fd: number): number;
}

export function loadShim(addonPath: string): TunShim {
  const m = { exports: {} as TunShim };
  process.dlopen(m, addonPath);
  return m.exports;
}
