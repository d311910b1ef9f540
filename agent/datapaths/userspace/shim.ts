// The native shim's surface (native/podnet-tun.c): syscalls only, many packets per call.
// Loaded with process.dlopen from an explicit path, so the esbuild bundles leave it alone and
// it is found beside them wherever they are installed.

export interface TunShim {
  /** Attaches to (or creates) TUN device `name`: IFF_TUN | IFF_NO_PI [| IFF_VNET_HDR], non-blocking. */
  openTun(name: string, vnetHdr: boolean): number;
  /** SOCK_RAW IPPROTO_IPIP with IP_HDRINCL, bound to `local`, buffers forced to `bufBytes`. */
  openRaw(local: string, bufBytes: number): number;
  /** poll() both fds for input: 1 A readable, 2 B readable, 4 A error, 8 B error; < 0: -errno. */
  poll(fdA: number, fdB: number, timeoutMs: number): number;
  /** read() up to max packets; packet i at buf[i*slot+off], length lens[i]. < 0: -errno. */
  readMany(fd: number, buf: Buffer, slot: number, off: number, max: number, lens: Int32Array): number;
  /** write() each buf[offs[i]..offs[i]+lens[i]); returns how many were written whole. */
  writeMany(fd: number, buf: Buffer, offs: Int32Array, lens: Int32Array, count: number): number;
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
