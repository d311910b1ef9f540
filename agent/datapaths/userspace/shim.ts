// The native shim's surface (native/podnet-tun.c): syscalls, many packets per call, and the
// TUN's offload mechanics (cutting TSO reads into segments, checksums, merging received
// segments into GSO writes); no policy.
// Loaded with process.dlopen from an explicit path, so the esbuild bundles leave it alone and
// it is found beside them wherever they are installed.

export interface TunShim {
  /**
   * Attaches to (or creates) TUN device `name`: IFF_TUN | IFF_NO_PI [| IFF_VNET_HDR], non-blocking.
   * `offload` (needs vnetHdr): TUNSETOFFLOAD CSUM|TSO4, so reads may be TSO super-packets and
   * partial checksums (use readSegments), and writes may be GSO_TCPV4 (writeCoalesced makes them).
   */
  openTun(name: string, vnetHdr: boolean, offload?: boolean): number;
  /** SOCK_RAW IPPROTO_IPIP with IP_HDRINCL, bound to `local`, buffers forced to `bufBytes`. */
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
  readSegments(fd: number, scratch: Buffer, state: Int32Array, out: Buffer, headroom: number, maxReads: number, offs: Int32Array, lens: Int32Array): number;
  /** readSegments' cutting for one [virtio_net_hdr | packet] at src[off..off+len): segments, or -1 malformed, -2 no room. */
  segment(src: Uint8Array, off: number, len: number, out: Uint8Array, headroom: number, offs: Int32Array, lens: Int32Array): number;
  /** write() each buf[offs[i]..offs[i]+lens[i]); returns how many were written whole. */
  writeMany(fd: number, buf: Buffer, offs: Int32Array, lens: Int32Array, count: number): number;
  /**
   * Like writeMany for items [virtio_net_hdr | packet], but runs of consecutive in-order TCP
   * segments of one flow (GRO's rules, checksums verified) go as one GSO_TCPV4 write. Returns
   * how many input packets were written; stats (Int32Array(2)) gets [0] += writes,
   * [1] += packets that went in merged writes.
   */
  writeCoalesced(fd: number, buf: Buffer, offs: Int32Array, lens: Int32Array, count: number, stats?: Int32Array): number;
  /** recvmmsg: packet i at buf[i*slot], lens[i] (> slot: truncated), srcs[i] host-order IPv4. */
  recvMany(fd: number, buf: Buffer, slot: number, max: number, lens: Int32Array, srcs: Uint32Array): number;
  /** sendmmsg each buf[offs[i]..+lens[i]) to dsts[i] (host-order IPv4); returns how many were sent. */
  sendMany(fd: number, buf: Buffer, offs: Int32Array, lens: Int32Array, dsts: Uint32Array, count: number): number;
  close(fd: number): number;
}

export function loadShim(addonPath: string): TunShim {
  const m = { exports: {} as TunShim };
  process.dlopen(m, addonPath);
  return m.exports;
}
