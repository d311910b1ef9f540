// The userspace shim's TUN offload mechanics, against the built addon (dist/agent/podnet-tun.node,
// made by scripts/build-native.sh; skipped with a note when it is missing or older than its
// sources): a 64 KB TSO super-packet cut into segments whose every header and checksum is checked
// with an independent RFC 1071 sum, partial checksums completed, and received segments merged
// into one GSO_TCPV4 write (virtio_net_hdr + super-packet) only where GRO would merge them.
// writeCoalesced writes to a temporary file here: writev appends, so the file holds exactly the
// [virtio_net_hdr | packet] records the TUN would have been given.
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadShim, type TunShim } from '../../../../../agent/datapaths/userspace/shim';
import { VNET_HLEN } from '../../../../../agent/datapaths/userspace/ipip-codec';
import { toUserspaceCounters } from '../../../../../agent/datapaths/userspace/index';
import { USERSPACE_DROP_REASONS, zeroDrops } from '../../../../../src/model/drop-reasons';

const root = join(__dirname, '..', '..', '..', '..', '..');
const addon = join(root, 'dist', 'agent', 'podnet-tun.node');
const native = join(root, 'agent', 'datapaths', 'userspace', 'native');
const newestSource = Math.max(...readdirSync(native).map((f) => statSync(join(native, f)).mtimeMs));
const fresh = existsSync(addon) && statSync(addon).mtimeMs >= newestSource;
if (!fresh)
  process.stderr.write(
    `[userspace offload] ${addon} is ${existsSync(addon) ? 'older than its sources' : 'missing'}: run npm run build; offload tests skipped\n`,
  );
const describeAddon = fresh ? describe : describe.skip;

const GSO_NONE = 0;
const GSO_TCPV4 = 1;
const NEEDS_CSUM = 1;
const FIN = 0x01,
  SYN = 0x02,
  PSH = 0x08,
  ACK = 0x10,
  CWR = 0x80;
const HEADROOM = 20;

/** RFC 1071 over big-endian 16-bit words, independent of the shim; returns the folded sum (not complemented). */
function sum16(b: Uint8Array, initial = 0): number {
  let s = initial;
  for (let i = 0; i + 1 < b.length; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (b.length % 2) s += b[b.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
const be16 = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;
const be32 = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
const put16 = (b: Uint8Array, o: number, v: number) => {
  b[o] = (v >>> 8) & 255;
  b[o + 1] = v & 255;
};
const put32 = (b: Uint8Array, o: number, v: number) => {
  put16(b, o, v >>> 16);
  put16(b, o + 2, v & 0xffff);
};
/** The pseudo-header sum of the IPv4 header at ip[0..20) for an L4 length. */
const pseudo = (ip: Uint8Array, proto: number, l4len: number) => sum16(ip.subarray(12, 20), proto + l4len);
/** A TCP/UDP checksum over ip's L4 part verifies (sum with the field = 0xffff). */
const l4Valid = (ip: Uint8Array, proto = 6) => sum16(ip.subarray(20, be16(ip, 2)), pseudo(ip, proto, be16(ip, 2) - 20)) === 0xffff;
const ipValid = (ip: Uint8Array) => sum16(ip.subarray(0, (ip[0]! & 15) * 4)) === 0xffff;

/** A virtio_net_hdr (native = little-endian on the machines podnet runs on). */
function vnet(
  o: { flags?: number; gso?: number; hdrLen?: number; gsoSize?: number; csumStart?: number; csumOffset?: number } = {},
): Buffer {
  const v = Buffer.alloc(VNET_HLEN);
  v[0] = o.flags ?? 0;
  v[1] = o.gso ?? GSO_NONE;
  v.writeUInt16LE(o.hdrLen ?? 0, 2);
  v.writeUInt16LE(o.gsoSize ?? 0, 4);
  v.writeUInt16LE(o.csumStart ?? 0, 6);
  v.writeUInt16LE(o.csumOffset ?? 0, 8);
  return v;
}

interface TcpOpts {
  payload: Uint8Array;
  seq: number;
  ack?: number;
  flags?: number;
  id?: number;
  df?: boolean;
  ttl?: number;
  tos?: number;
  src?: number[];
  dst?: number[];
  sport?: number;
  dport?: number;
  options?: number[];
  window?: number;
}

/** IPv4 + TCP with a full checksum (partial: the TCP field holds only the pseudo-header sum, as a CHECKSUM_PARTIAL sender leaves it). */
function tcpPacket(o: TcpOpts, partial = false): Buffer {
  const opts = o.options ?? [];
  const thl = 20 + opts.length;
  const tot = 20 + thl + o.payload.length;
  const p = Buffer.alloc(tot);
  p[0] = 0x45;
  p[1] = o.tos ?? 0;
  put16(p, 2, tot);
  put16(p, 4, o.id ?? 0x1234);
  put16(p, 6, o.df === false ? 0 : 0x4000);
  p[8] = o.ttl ?? 63;
  p[9] = 6;
  p.set(o.src ?? [10, 244, 1, 2], 12);
  p.set(o.dst ?? [10, 244, 2, 2], 16);
  put16(p, 10, ~sum16(p.subarray(0, 20)) & 0xffff);
  put16(p, 20, o.sport ?? 40000);
  put16(p, 22, o.dport ?? 5201);
  put32(p, 24, o.seq >>> 0);
  put32(p, 28, o.ack ?? 0x01020304);
  p[32] = (thl / 4) << 4;
  p[33] = o.flags ?? ACK;
  put16(p, 34, o.window ?? 502);
  p.set(opts, 40);
  p.set(o.payload, 20 + thl);
  const ps = pseudo(p, 6, thl + o.payload.length);
  put16(p, 36, partial ? ps : ~sum16(p.subarray(20), ps) & 0xffff);
  return p;
}

const TS_OPTS = [1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78]; // NOP NOP timestamps
const pattern = (n: number, seed = 7) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed + (i >>> 8)) & 255);

describeAddon('userspace shim offloads (built addon)', () => {
  let shim: TunShim;
  beforeAll(() => {
    shim = loadShim(addon);
  });

  const out = Buffer.alloc(1 << 20);
  const offs = new Int32Array(1024);
  const lens = new Int32Array(1024);

  describe('segment: TSO super-packets read from the TUN', () => {
    it('cuts a 64 KB TCP super-packet into MSS segments with correct IP and TCP headers and checksums', () => {
      const mss = 1428;
      const payload = pattern(65535 - 20 - 32);
      const seq0 = 0xfffff000; // wraps during the packet
      const id0 = 0xffe0; // wraps too
      const pkt = tcpPacket({ payload, seq: seq0, id: id0, flags: ACK | PSH | FIN | CWR, options: TS_OPTS, ttl: 64, tos: 2 }, true);
      const src = Buffer.concat([
        vnet({ flags: NEEDS_CSUM, gso: GSO_TCPV4, hdrLen: 52, gsoSize: mss, csumStart: 20, csumOffset: 16 }),
        pkt,
      ]);
      const n = shim.segment(src, 0, src.length, out, HEADROOM, offs, lens);
      const want = Math.ceil(payload.length / mss);
      expect(n).toBe(want);
      const seen = Buffer.alloc(payload.length);
      for (let i = 0; i < n; i++) {
        const off = offs[i]!;
        const seg = out.subarray(off, off + lens[i]!);
        const plen = i < n - 1 ? mss : payload.length - (n - 1) * mss;
        expect((off - HEADROOM) % 16).toBe(0); // 16-aligned slots with the headroom in front
        if (i > 0) expect(off - HEADROOM).toBeGreaterThanOrEqual(offs[i - 1]! + lens[i - 1]!);
        expect(lens[i]).toBe(52 + plen);
        expect(seg[0]).toBe(0x45);
        expect(seg[1]).toBe(2);
        expect(be16(seg, 2)).toBe(52 + plen);
        expect(be16(seg, 4)).toBe((id0 + i) & 0xffff);
        expect(be16(seg, 6)).toBe(0x4000);
        expect(seg[8]).toBe(64);
        expect(seg[9]).toBe(6);
        expect(ipValid(seg)).toBe(true);
        expect(be32(seg, 24)).toBe((seq0 + i * mss) >>> 0);
        expect(be32(seg, 28)).toBe(0x01020304);
        expect(seg[32]).toBe(0x80);
        const last = i === n - 1;
        expect(seg[33]).toBe(ACK | (last ? PSH | FIN : 0) | (i === 0 ? CWR : 0));
        expect([...seg.subarray(40, 52)]).toEqual(TS_OPTS);
        expect(l4Valid(seg)).toBe(true);
        seen.set(seg.subarray(52), i * mss);
      }
      expect(seen.equals(Buffer.from(payload))).toBe(true);
    });

    it('a super-packet whose payload fits one segment comes out as one packet with a full checksum', () => {
      const pkt = tcpPacket({ payload: pattern(1000), seq: 5, flags: ACK | PSH }, true);
      const src = Buffer.concat([
        vnet({ flags: NEEDS_CSUM, gso: GSO_TCPV4, hdrLen: 40, gsoSize: 1440, csumStart: 20, csumOffset: 16 }),
        pkt,
      ]);
      expect(shim.segment(src, 0, src.length, out, HEADROOM, offs, lens)).toBe(1);
      const seg = out.subarray(offs[0]!, offs[0]! + lens[0]!);
      expect(lens[0]).toBe(pkt.length);
      expect(l4Valid(seg)).toBe(true);
      expect(ipValid(seg)).toBe(true);
      expect(seg[33]).toBe(ACK | PSH);
    });

    it('completes partial checksums of single packets (TCP; UDP, where a computed 0 is sent as 0xffff)', () => {
      const tcp = tcpPacket({ payload: pattern(333), seq: 77 }, true);
      const t = Buffer.concat([vnet({ flags: NEEDS_CSUM, csumStart: 20, csumOffset: 16 }), tcp]);
      expect(shim.segment(t, 0, t.length, out, HEADROOM, offs, lens)).toBe(1);
      const seg = out.subarray(offs[0]!, offs[0]! + lens[0]!);
      expect(l4Valid(seg)).toBe(true);
      expect(Buffer.from(seg).equals(tcpPacket({ payload: pattern(333), seq: 77 }))).toBe(true);

      // UDP whose checksum comes out 0: payload chosen so that the sum is 0xffff.
      const udp = Buffer.alloc(20 + 8 + 2);
      udp[0] = 0x45;
      put16(udp, 2, udp.length);
      udp[8] = 64;
      udp[9] = 17;
      udp.set([10, 244, 1, 2], 12);
      udp.set([10, 244, 2, 2], 16);
      put16(udp, 10, ~sum16(udp.subarray(0, 20)) & 0xffff);
      put16(udp, 20, 1000);
      put16(udp, 22, 2000);
      put16(udp, 24, 10);
      const ps = pseudo(udp, 17, 10);
      put16(udp, 26, ps);
      put16(udp, 28, (0xffff - sum16(udp.subarray(20), 0)) & 0xffff); // makes the total 0xffff
      expect(sum16(udp.subarray(20))).toBe(0xffff);
      const u = Buffer.concat([vnet({ flags: NEEDS_CSUM, csumStart: 20, csumOffset: 6 }), udp]);
      expect(shim.segment(u, 0, u.length, out, HEADROOM, offs, lens)).toBe(1);
      expect(be16(out, offs[0]! + 26)).toBe(0xffff);
    });

    it('hands a plain packet over untouched, and refuses what it cannot cut', () => {
      const pkt = tcpPacket({ payload: pattern(100), seq: 1 });
      const p = Buffer.concat([vnet(), pkt]);
      expect(shim.segment(p, 0, p.length, out, HEADROOM, offs, lens)).toBe(1);
      expect(Buffer.from(out.subarray(offs[0]!, offs[0]! + lens[0]!)).equals(pkt)).toBe(true);

      const big = tcpPacket({ payload: pattern(4000), seq: 1 }, true);
      const udpGso = Buffer.concat([vnet({ flags: NEEDS_CSUM, gso: 3, gsoSize: 1400, csumStart: 20, csumOffset: 16 }), big]);
      expect(shim.segment(udpGso, 0, udpGso.length, out, HEADROOM, offs, lens)).toBe(-1);
      const noMss = Buffer.concat([vnet({ flags: NEEDS_CSUM, gso: GSO_TCPV4, gsoSize: 0, csumStart: 20, csumOffset: 16 }), big]);
      expect(shim.segment(noMss, 0, noMss.length, out, HEADROOM, offs, lens)).toBe(-1);
      const badCsum = Buffer.concat([vnet({ flags: NEEDS_CSUM, csumStart: 20, csumOffset: 5000 }), big]); // beyond the packet
      expect(shim.segment(badCsum, 0, badCsum.length, out, HEADROOM, offs, lens)).toBe(-1);
      // Room for 2 segments, the packet needs 3: nothing is written.
      const gso = Buffer.concat([vnet({ flags: NEEDS_CSUM, gso: GSO_TCPV4, gsoSize: 1440, csumStart: 20, csumOffset: 16 }), big]);
      expect(shim.segment(gso, 0, gso.length, out, HEADROOM, offs.subarray(0, 2), lens.subarray(0, 2))).toBe(-2);
      expect(shim.segment(gso, 0, gso.length, out.subarray(0, 3000), HEADROOM, offs, lens)).toBe(-2);
      expect(shim.segment(gso, 0, gso.length, out, HEADROOM, offs, lens)).toBe(3);
    });
  });

  describe('writeCoalesced: received segments into GSO writes', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'podnet-offload-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    /** Lays packets out as the worker does ([vnet | packet] items, vnet zero unless given), writes them, parses what was written. */
    function write(items: { pkt: Uint8Array; v?: Buffer }[]): { ok: number; stats: number[]; records: { v: Buffer; pkt: Buffer }[] } {
      const buf = Buffer.alloc(items.reduce((s, x) => s + 64 + VNET_HLEN + x.pkt.length, 0));
      const o = new Int32Array(items.length);
      const l = new Int32Array(items.length);
      let at = 20; // like the tail of an outer header
      items.forEach((x, i) => {
        (x.v ?? vnet()).copy(buf, at);
        buf.set(x.pkt, at + VNET_HLEN);
        o[i] = at;
        l[i] = VNET_HLEN + x.pkt.length;
        at += VNET_HLEN + x.pkt.length + 64;
      });
      const file = join(dir, `w${Math.random().toString(16).slice(2)}`);
      const fd = openSync(file, 'w');
      const stats = new Int32Array(2);
      let ok: number;
      try {
        ok = shim.writeCoalesced(fd, buf, o, l, items.length, stats);
      } finally {
        closeSync(fd);
      }
      const data = readFileSync(file);
      const records: { v: Buffer; pkt: Buffer }[] = [];
      for (let p = 0; p < data.length;) {
        const v = data.subarray(p, p + VNET_HLEN);
        const tot = be16(data, p + VNET_HLEN + 2);
        records.push({ v, pkt: data.subarray(p + VNET_HLEN, p + VNET_HLEN + tot) });
        p += VNET_HLEN + tot;
      }
      return { ok, stats: [...stats], records };
    }

    /** A flow's consecutive segments, as a userspace peer's shim cuts them (full checksums, IDs counting up). */
    function flow(n: number, o: Partial<TcpOpts> & { mss?: number; last?: number; lastFlags?: number } = {}): Buffer[] {
      const mss = o.mss ?? 1440;
      const seq = o.seq ?? 1000;
      return Array.from({ length: n }, (_, i) => {
        const plen = i === n - 1 && o.last !== undefined ? o.last : mss;
        return tcpPacket({
          ...o,
          payload: pattern(plen, i),
          seq: seq + i * mss,
          id: ((o.id ?? 100) + i) & 0xffff,
          flags: i === n - 1 && o.lastFlags !== undefined ? o.lastFlags : (o.flags ?? ACK),
        });
      });
    }

    it("merges one flow's in-order segments into one GSO_TCPV4 write: headers, virtio_net_hdr, payload", () => {
      const segs = flow(10, { options: TS_OPTS, last: 700, lastFlags: ACK | PSH, seq: 0xfffffa00 });
      const { ok, stats, records } = write(segs.map((pkt) => ({ pkt })));
      expect(ok).toBe(10);
      expect(stats).toEqual([1, 10]);
      expect(records).toHaveLength(1);
      const { v, pkt } = records[0]!;
      expect(v[0]).toBe(NEEDS_CSUM);
      expect(v[1]).toBe(GSO_TCPV4);
      expect(v.readUInt16LE(2)).toBe(52); // hdr_len
      expect(v.readUInt16LE(4)).toBe(1440); // gso_size
      expect(v.readUInt16LE(6)).toBe(20); // csum_start
      expect(v.readUInt16LE(8)).toBe(16); // csum_offset
      const payloadLen = 9 * 1440 + 700;
      expect(be16(pkt, 2)).toBe(52 + payloadLen);
      expect(ipValid(pkt)).toBe(true);
      expect(be16(pkt, 4)).toBe(100); // the first segment's ID
      expect(be32(pkt, 24)).toBe(0xfffffa00);
      expect(pkt[33]).toBe(ACK | PSH); // the last one's PSH
      expect(be16(pkt, 36)).toBe(pseudo(pkt, 6, 32 + payloadLen)); // CHECKSUM_PARTIAL: the pseudo-header sum
      expect(Buffer.concat(segs.map((s) => s.subarray(52))).equals(pkt.subarray(52))).toBe(true);
    });

    it('cuts runs where GRO would: gaps, other flows, size changes, flags, IDs, TTL/TOS, options', () => {
      const base = flow(4);
      const cases: [string, Buffer[], number[]][] = [
        ['seq gap', [base[0]!, base[2]!, base[3]!], [1, 2]],
        ['other flow between', [base[0]!, base[1]!, flow(1, { sport: 1 })[0]!, base[2]!, base[3]!], [2, 1, 2]],
        [
          'short one ends the run',
          [...flow(2, { last: 500 }), tcpPacket({ payload: pattern(1440), seq: 1000 + 1440 + 500, id: 102 })],
          [2, 1],
        ],
        ['bigger one after', [...flow(2, { mss: 1000 }), tcpPacket({ payload: pattern(1440), seq: 3000, id: 102 })], [2, 1]],
        [
          'PSH ends the run',
          [...flow(2, { lastFlags: ACK | PSH }), tcpPacket({ payload: pattern(1440), seq: 1000 + 2880, id: 102 })],
          [2, 1],
        ],
        ['PSH first stays alone', flow(3, { flags: ACK | PSH }), [1, 1, 1]],
        ['ack changes', [base[0]!, tcpPacket({ payload: pattern(1440, 1), seq: 2440, id: 101, ack: 99 })], [1, 1]],
        [
          'ID not counting up (no DF)',
          [...flow(2, { df: false }), tcpPacket({ payload: pattern(1440), seq: 1000 + 2880, id: 500, df: false })],
          [2, 1],
        ],
        [
          'ID fixed with DF merges',
          [tcpPacket({ payload: pattern(1440), seq: 1000, id: 7 }), tcpPacket({ payload: pattern(1440), seq: 2440, id: 7 })],
          [2],
        ],
        ['TTL differs', [base[0]!, tcpPacket({ payload: pattern(1440, 1), seq: 2440, id: 101, ttl: 5 })], [1, 1]],
        ['TOS differs', [base[0]!, tcpPacket({ payload: pattern(1440, 1), seq: 2440, id: 101, tos: 3 })], [1, 1]],
        [
          'options differ',
          [
            ...flow(1, { options: TS_OPTS }),
            tcpPacket({ payload: pattern(1440, 1), seq: 2440, id: 101, options: [1, 1, 8, 10, 0, 0, 0x12, 0x35, 0, 0, 0x56, 0x78] }),
          ],
          [1, 1],
        ],
        ['SYN is never merged', [tcpPacket({ payload: pattern(1440), seq: 1000, id: 100, flags: SYN | ACK }), base[1]!, base[2]!], [1, 2]],
        [
          'CWR is never merged',
          [base[0]!, tcpPacket({ payload: pattern(1440, 1), seq: 2440, id: 101, flags: ACK | CWR }), base[2]!],
          [1, 1, 1],
        ],
        [
          'pure ACKs are written alone',
          [tcpPacket({ payload: new Uint8Array(0), seq: 1 }), tcpPacket({ payload: new Uint8Array(0), seq: 1, id: 0x1235 })],
          [1, 1],
        ],
      ];
      for (const [name, pkts, groups] of cases) {
        const { ok, records } = write(pkts.map((pkt) => ({ pkt })));
        expect({ name, ok }).toEqual({ name, ok: pkts.length });
        // Each record: how many input packets it carries (its payload bytes back to packets).
        let k = 0;
        const got = records.map((r) => {
          const tot = be16(r.pkt, 2);
          let want = 0;
          let carried = 20 + (r.pkt[32]! >> 4) * 4;
          while (carried < tot) ((carried += be16(pkts[k + want]!, 2) - 20 - (pkts[k + want]![32]! >> 4) * 4), want++);
          if (want === 0) want = 1;
          k += want;
          return want;
        });
        expect({ name, got }).toEqual({ name, got: groups });
        for (const r of records) {
          if (r.v[1] === GSO_TCPV4) expect(be16(r.pkt, 36)).toBe(pseudo(r.pkt, 6, be16(r.pkt, 2) - 20));
          else expect({ name, v: [...r.v] }).toEqual({ name, v: new Array(10).fill(0) });
        }
      }
    });

    it('never merges a segment with a bad checksum; writes it alone, unchanged, for the kernel to drop', () => {
      const segs = flow(3);
      const bad = Buffer.from(segs[1]!);
      bad[100] ^= 0xff;
      const { ok, stats, records } = write([{ pkt: segs[0]! }, { pkt: bad }, { pkt: segs[2]! }]);
      expect(ok).toBe(3);
      expect(stats).toEqual([3, 0]);
      expect(records.map((r) => r.pkt.equals(r === records[1] ? bad : r === records[0] ? segs[0]! : segs[2]!))).toEqual([true, true, true]);
      const badIp = Buffer.from(segs[1]!);
      badIp[8] = 1; // TTL changed without fixing the IP checksum
      expect(write([{ pkt: segs[0]! }, { pkt: badIp }]).stats).toEqual([2, 0]);
    });

    it('writes packets that already have a virtio_net_hdr (offloading peers) as they are', () => {
      const sp = tcpPacket({ payload: pattern(5000), seq: 1 }, true);
      const v = vnet({ flags: NEEDS_CSUM, gso: GSO_TCPV4, hdrLen: 40, gsoSize: 1440, csumStart: 20, csumOffset: 16 });
      const segs = flow(2, { seq: 5001 });
      const { ok, records } = write([{ pkt: sp, v }, { pkt: segs[0]! }, { pkt: segs[1]! }]);
      expect(ok).toBe(3);
      expect(records).toHaveLength(2);
      expect(records[0]!.v.equals(v)).toBe(true);
      expect(records[0]!.pkt.equals(sp)).toBe(true);
      expect(records[1]!.v[1]).toBe(GSO_TCPV4);
    });

    it('round trip: segments cut from a super-packet merge back into it', () => {
      const payload = pattern(60000, 3);
      const pkt = tcpPacket({ payload, seq: 42, id: 9, options: TS_OPTS, flags: ACK | PSH }, true);
      const src = Buffer.concat([
        vnet({ flags: NEEDS_CSUM, gso: GSO_TCPV4, hdrLen: 52, gsoSize: 1428, csumStart: 20, csumOffset: 16 }),
        pkt,
      ]);
      const n = shim.segment(src, 0, src.length, out, HEADROOM, offs, lens);
      expect(n).toBe(Math.ceil(60000 / 1428));
      const { ok, records } = write(Array.from({ length: n }, (_, i) => ({ pkt: out.subarray(offs[i]!, offs[i]! + lens[i]!) })));
      expect(ok).toBe(n);
      expect(records).toHaveLength(1);
      const merged = records[0]!.pkt;
      expect(merged.subarray(0, 36).equals(pkt.subarray(0, 36))).toBe(true); // same headers up to the checksum
      expect(merged.subarray(52).equals(Buffer.from(payload))).toBe(true);
      expect(be16(merged, 36)).toBe(be16(pkt, 36)); // both hold the pseudo-header sum
    });
  });
});

describe('offload counters in status', () => {
  it('are passed through beside peers and drops, and left out when the worker sent none', () => {
    const drops = zeroDrops(USERSPACE_DROP_REASONS);
    const offload = { tunReads: 10, txSegments: 450, tunWrites: 20, rxMerged: 400 };
    expect(toUserspaceCounters([], drops, offload)).toEqual({ peers: [], dropped: 0, drops, offload });
    expect(toUserspaceCounters([], drops)).not.toHaveProperty('offload');
  });
});
