// Hand-built IPv4 packets for the userspace datapath's codec tests, with checksums computed
// independently of the codec.

/** RFC 1071 checksum, written independently of the codec (16-bit words through a DataView). */
export function rfc1071(bytes: Uint8Array): number {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let sum = 0;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += v.getUint16(i);
  if (bytes.length % 2) sum += bytes[bytes.length - 1]! << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

export const ip = (s: string) => s.split('.').map(Number);

/** An IPv4 header, byte by byte, with its checksum filled in. */
export function ipv4Header(o: {
  tos?: number;
  totalLength: number;
  id?: number;
  flags?: number;
  ttl: number;
  proto: number;
  src: string;
  dst: string;
}): number[] {
  const h = [
    0x45,
    o.tos ?? 0,
    o.totalLength >> 8,
    o.totalLength & 255,
    (o.id ?? 0) >> 8,
    (o.id ?? 0) & 255,
    (o.flags ?? 0) >> 8,
    (o.flags ?? 0) & 255,
    o.ttl,
    o.proto,
    0,
    0,
    ...ip(o.src),
    ...ip(o.dst),
  ];
  const c = rfc1071(Uint8Array.from(h));
  h[10] = c >> 8;
  h[11] = c & 255;
  return h;
}

/** 10.244.1.2 > 10.244.2.2: ICMP echo request, 64 bytes, as ping sends it (DF, forwarded once: TTL 63). */
export function icmpEcho(opts: { tos?: number; flags?: number; ttl?: number; src?: string; dst?: string } = {}): Uint8Array {
  const icmp = [8, 0, 0, 0, 0x12, 0x34, 0, 1, ...Array.from({ length: 56 }, (_, i) => i)];
  const c = rfc1071(Uint8Array.from(icmp));
  icmp[2] = c >> 8;
  icmp[3] = c & 255;
  return Uint8Array.from([
    ...ipv4Header({
      tos: opts.tos,
      totalLength: 20 + icmp.length,
      id: 0xbeef,
      flags: opts.flags ?? 0x4000,
      ttl: opts.ttl ?? 63,
      proto: 1,
      src: opts.src ?? '10.244.1.2',
      dst: opts.dst ?? '10.244.2.2',
    }),
    ...icmp,
  ]);
}
