// The userspace datapath's packet loop, in a worker thread so the agent's event loop (status,
// reconcile, netlink events) stays responsive under load. Bundled on its own as
// dist/agent/podnet-userspace-worker.js and started by UserspaceDatapath (./index.ts).
//
// One blocking poll() on both descriptors, then whole batches each way per JS->native crossing:
//   TUN -> readSegments: the TUN runs with offloads (CSUM|TSO4), so the kernel hands over 64 KB
//          TCP super-packets and unchecksummed packets; the shim cuts and checksums them into
//          exactly the packets the kernel would have handed over without offloads, each with
//          20 bytes free before it. Per segment, as for any packet: peer lookup, the outer
//          header written in place (ipip-codec encapsulate: TTL/DF/ECN/ID policy); sendMany.
//   raw -> recvMany (outer header included), decapsulate checks and fixes ECN in place, the
//          virtio_net_hdr is written over the tail of the outer header; writeCoalesced to the
//          TUN, which merges runs of in-order segments of one TCP flow into GSO writes.
//   raw error queue -> a router's "fragmentation needed" teaches a peer's path MTU; DF inner
//          packets too big for it are answered with an inner ICMP written into the TUN instead
//          of being sent, as kernel ipip does (path-mtu.ts).
// Why the split: cutting and merging are byte work with checksums (native is ~20x faster than
// JS at it) and follow fixed rules (what the kernel's TSO and GRO do); every decision about a
// packet (which peer, accept or drop, what the outer header says) stays in TypeScript and sees
// the same MTU-sized packets as without offloads, so the codec and its tests are unchanged.
// Control: a SharedArrayBuffer flag (stop) and a MessagePort read synchronously between
// batches (peer updates, counter requests). Counters are posted every second and on request.
import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import {
  Decapsulated,
  OUTER_HLEN,
  PeerTable,
  VNET_HLEN,
  decapsulate,
  encapsulate,
  innerDestination,
  writeVnetHeader,
  type DropReason,
  type PeerSpec,
} from './ipip-codec';
import { PathMtuTable, innerTooBig, quotedInner, relayVerdict, reportedPathMtu, writeFragNeeded, type RelayScope } from './path-mtu';
import { loadShim } from './shim';
import { cidrContainsAddress, requireCidr, requireIpv4 } from '../../../src/model/ipv4';
import { isAssignablePodAddressIn } from '../../../src/model/pod-address';
import { USERSPACE_DROP_REASONS, zeroDrops } from '../../../src/model/drop-reasons';

export interface WorkerConfig {
  readonly addonPath: string;
  readonly tunnelDevice: string;
  readonly localAddress: string;
  readonly mtu: number;
  /** This node's pod subnet ("10.244.1.0/24"), its tunnel address ("10.244.1.0/32") and the cluster CIDR: whose packets' ICMP errors are relayed (relayVerdict). */
  readonly podCidr: string;
  readonly tunnelAddress: string;
  readonly clusterCidr: string;
  readonly peers: readonly PeerSpec[];
  /** Int32Array over it: [0] = stop requested. */
  readonly control: SharedArrayBuffer;
  readonly port: MessagePort;
  /** Packets per crossing (default 64). */
  readonly batch?: number;
  /** Raw socket buffer size, bytes (default 4 MiB). */
  readonly sockBuf?: number;
}

export type ToWorker = { type: 'peers'; peers: readonly PeerSpec[] } | { type: 'counters' };

export interface PeerCounterSnapshot {
  readonly node: string;
  readonly address: string;
  readonly txPackets: number;
  readonly txBytes: number;
  readonly rxPackets: number;
  readonly rxBytes: number;
  /** The learned outer path MTU towards this peer, when one is in force (path-mtu.ts). */
  readonly pathMtu?: number;
  /** Routers' "fragmentation needed" about this peer's packets, relayed to the inner sender. */
  readonly fragNeededRelayed?: number;
}

/** What the TUN offloads did (cumulative per worker). */
export interface OffloadCounters {
  /** read()s on the TUN, and the packets they were cut into (> reads: TSO super-packets). */
  tunReads: number;
  txSegments: number;
  /** write()s to the TUN, and the received packets that went in merged (GSO) writes. */
  tunWrites: number;
  rxMerged: number;
}

export type FromWorker =
  | { type: 'ready' }
  | { type: 'counters'; peers: PeerCounterSnapshot[]; drops: Record<DropReason, number>; offload: OffloadCounters }
  | { type: 'fatal'; message: string };

interface PeerCounters {
  node: string;
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
  fragNeededRelayed: number;
  /** The next outer IP ID towards this peer. */
  nextId: number;
}

function runLoop(cfg: WorkerConfig): void {
  const shim = loadShim(cfg.addonPath);
  const control = new Int32Array(cfg.control);
  const port = cfg.port;
  const post = (m: FromWorker) => port.postMessage(m);
  const batch = Math.min(256, cfg.batch ?? 64);
  const local = requireIpv4(cfg.localAddress);
  const mtu = cfg.mtu;

  // Counters live by peer address, so they (and the ID sequence) survive peer updates.
  const byAddress = new Map<string, PeerCounters>();
  let table = new PeerTable([]);
  let ctr: PeerCounters[] = [];
  const drops = zeroDrops(USERSPACE_DROP_REASONS);
  const setPeers = (peers: readonly PeerSpec[]) => {
    table = new PeerTable(peers.filter((p) => p.address !== cfg.localAddress));
    ctr = table.peers.map((p) => {
      let c = byAddress.get(p.address);
      if (!c)
        byAddress.set(
          p.address,
          (c = {
            node: p.node,
            txPackets: 0,
            txBytes: 0,
            rxPackets: 0,
            rxBytes: 0,
            fragNeededRelayed: 0,
            nextId: (Math.random() * 0x10000) | 0,
          }),
        );
      c.node = p.node;
      return c;
    });
  };
  setPeers(cfg.peers);
  const offload: OffloadCounters = { tunReads: 0, txSegments: 0, tunWrites: 0, rxMerged: 0 };
  // The underlay MTU: what holds towards a peer until a router says less.
  const linkMtu = mtu + OUTER_HLEN;
  const pathMtu = new PathMtuTable(linkMtu);
  const podCidr = requireCidr(cfg.podCidr);
  const tunnelAddress = requireIpv4(cfg.tunnelAddress.split('/')[0]!);
  const clusterCidr = requireCidr(cfg.clusterCidr);
  const relayScope: RelayScope = {
    local,
    ownSource: (a) => a === tunnelAddress || isAssignablePodAddressIn(podCidr, a),
    overlay: (a) => cidrContainsAddress(clusterCidr, a),
    peerOf: (a) => table.lookup(a),
  };
  const snapshot = (): FromWorker => ({
    type: 'counters',
    peers: table.peers.map((p, i) => {
      const pm = pathMtu.any ? pathMtu.get(p.addr, Date.now()) : linkMtu;
      return {
        node: p.node,
        address: p.address,
        txPackets: ctr[i]!.txPackets,
        txBytes: ctr[i]!.txBytes,
        rxPackets: ctr[i]!.rxPackets,
        rxBytes: ctr[i]!.rxBytes,
        ...(pm < linkMtu ? { pathMtu: pm } : {}),
        fragNeededRelayed: ctr[i]!.fragNeededRelayed,
      };
    }),
    drops: { ...drops },
    offload: { ...offload },
  });

  const tun = shim.openTun(cfg.tunnelDevice, true, true);
  let raw = -1;
  try {
    raw = shim.openRaw(cfg.localAddress, cfg.sockBuf ?? 4 << 20);
  } catch (e) {
    shim.close(tun);
    throw e;
  }

  // TUN -> raw: up to `batch` reads (each up to 64 KB) into txScratch, cut into segments in txBuf
  // ([outer 20 | inner <= mtu] each); a read that does not fit waits in txScratch (txState[0]).
  const txScratch = Buffer.alloc(VNET_HLEN + 65536);
  const txState = new Int32Array(3);
  const txSegs = 1024;
  const txBuf = Buffer.alloc(1 << 20);
  const segOffs = new Int32Array(txSegs);
  const segLens = new Int32Array(txSegs);
  const txOffs = new Int32Array(txSegs);
  const txSend = new Int32Array(txSegs);
  const txDsts = new Uint32Array(txSegs);
  const txStats = new Int32Array(1);
  // raw -> TUN: whole IPv4 packets up to 64 KiB (GSO super-packets from offloading peers).
  const rxSlot = 65536;
  const rxBuf = Buffer.alloc(rxSlot * batch);
  const rxLens = new Int32Array(batch);
  const rxSrcs = new Uint32Array(batch);
  const rxOffs = new Int32Array(batch);
  const rxWrite = new Int32Array(batch);
  const d = new Decapsulated();
  const rxStats = new Int32Array(2);
  // Raw socket error queue: the quoted packet of each ICMP error (576 bytes is all one carries).
  const errMax = 16;
  const errSlot = 576;
  const errBuf = Buffer.alloc(errSlot * errMax);
  const errLens = new Int32Array(errMax);
  const errMeta = new Int32Array(errMax * 5);
  const errAddrs = new Uint32Array(errMax * 2);
  // Inner "fragmentation needed" answers, each [virtio_net_hdr (zero: nothing offloaded) | ICMP].
  const icmpMax = 256;
  const icmpSlot = VNET_HLEN + 576;
  const icmpBuf = Buffer.alloc(icmpSlot * icmpMax);
  const icmpOffs = new Int32Array(icmpMax);
  const icmpLens = new Int32Array(icmpMax);
  let icmps = 0;
  /** Queues the answer to the IPv4 packet at buf[off..off+avail) for the TUN; false if none may be sent. */
  const answerTooBig = (buf: Buffer, off: number, avail: number, pm: number): boolean => {
    if (icmps >= icmpMax) return false;
    const n = writeFragNeeded(icmpBuf, icmps * icmpSlot + VNET_HLEN, buf, off, avail, pm - OUTER_HLEN);
    if (n === 0) return false;
    icmpOffs[icmps] = icmps * icmpSlot;
    icmpLens[icmps] = VNET_HLEN + n;
    icmps++;
    return true;
  };
  const flushAnswers = () => {
    if (icmps === 0) return;
    const ok = shim.writeMany(tun, icmpBuf, icmpOffs, icmpLens, icmps);
    if (ok < icmps) drops.tunWriteError += icmps - ok;
    icmps = 0;
  };

  post({ type: 'ready' });
  let lastPost = Date.now();
  try {
    while (Atomics.load(control, 0) === 0) {
      // A read kept over from the last batch is work already in hand: do not wait for more.
      const ready = shim.poll(tun, raw, txState[0]! > 0 ? 0 : 50);
      if (ready < 0) throw new Error(`poll failed: errno ${-ready}`);
      if (ready & 4) throw new Error(`${cfg.tunnelDevice}: the TUN device went away (deleted?)`);

      if (ready & 8) {
        // ICMP errors about packets we sent (IP_RECVERR), first: a path MTU learned here holds
        // for this batch's sends already.
        const n = shim.recvErrors(raw, errBuf, errSlot, errMax, errLens, errMeta, errAddrs);
        const now = Date.now();
        for (let i = 0; i < n; i++) {
          const m = i * 5;
          const reported = reportedPathMtu({
            errno: errMeta[m]!,
            origin: errMeta[m + 1]!,
            type: errMeta[m + 2]!,
            code: errMeta[m + 3]!,
            info: errMeta[m + 4]!,
          });
          const peer = errAddrs[i * 2]!;
          const p = table.indexOfAddress(peer);
          if (reported === undefined || p < 0) continue;
          const pm = pathMtu.learn(peer, reported, now);
          // Relay it: answer the packet the router dropped, so its sender need not wait to resend.
          // (Or the packet the kernel refused to send: then the ICMP is from this host, and
          // sendMany counted the packet as a fragNeeded drop.) Only if the quote is a packet of
          // ours to that peer (relayVerdict): else any underlay host could make us send ICMP.
          const base = i * errSlot;
          const avail = Math.min(errLens[i]!, errSlot);
          const inner = quotedInner(errBuf, base, avail, local);
          if (inner < 0) continue;
          const sender = errAddrs[i * 2 + 1]!;
          const verdict = relayVerdict(errBuf, inner, p, pm, sender, relayScope);
          if (verdict === 'foreign') drops.fragNeededForeign++;
          else if (verdict === 'relay' && answerTooBig(errBuf, inner, base + avail - inner, pm) && sender !== local)
            ctr[p]!.fragNeededRelayed++;
        }
        flushAnswers();
      }

      if (ready & 1 || txState[0]! > 0) {
        const n = shim.readSegments(tun, txScratch, txState, txBuf, OUTER_HLEN, batch, segOffs, segLens);
        if (n < 0) throw new Error(`reading ${cfg.tunnelDevice} failed: errno ${-n}`);
        if (txState[1]) {
          drops.malformed += txState[1]!;
          txState[1] = 0;
        }
        offload.tunReads += txState[2]!;
        txState[2] = 0;
        offload.txSegments += n;
        const now = pathMtu.any ? Date.now() : 0;
        let k = 0;
        for (let i = 0; i < n; i++) {
          const off = segOffs[i]!;
          const len = segLens[i]!;
          if (len < 20) {
            drops[len >= 1 && txBuf[off]! >>> 4 !== 4 ? 'notIpv4' : 'malformed']++;
            continue;
          }
          const p = txBuf[off]! >>> 4 === 4 ? table.lookup(innerDestination(txBuf, off)) : -1;
          if (p < 0) {
            drops[txBuf[off]! >>> 4 === 4 ? 'noPeer' : 'notIpv4']++;
            continue;
          }
          const c = ctr[p]!;
          if (now > 0) {
            const pm = pathMtu.get(table.peers[p]!.addr, now);
            if (innerTooBig(txBuf, off, len, pm)) {
              // As kernel ipip: not sent (the router would drop it), its sender told the MTU.
              drops.fragNeeded++;
              answerTooBig(txBuf, off, len, pm);
              continue;
            }
          }
          const r = encapsulate(txBuf, off, len, local, table.peers[p]!.addr, c.nextId);
          if (typeof r === 'string') {
            drops[r]++;
            continue;
          }
          c.nextId = (c.nextId + 1) & 0xffff || 1; // 0 would let the kernel pick one
          txOffs[k] = off - OUTER_HLEN;
          txSend[k] = r + OUTER_HLEN;
          txDsts[k] = table.peers[p]!.addr;
          c.txPackets++;
          c.txBytes += r + OUTER_HLEN;
          k++;
        }
        if (k > 0) {
          txStats[0] = 0;
          const sent = shim.sendMany(raw, txBuf, txOffs, txSend, txDsts, k, txStats);
          // Refused as too big for the path MTU the kernel learned from a router's ICMP a moment
          // before the worker did: the kernel queues an ICMP error from this host about each,
          // answered from the error queue. Every other failure is a sendError.
          drops.fragNeeded += txStats[0]!;
          if (sent < k) drops.sendError += k - sent - txStats[0]!;
        }
        flushAnswers();
      }

      if (ready & 10) {
        // An error on the raw socket (8) is cleared by the next receive, which reports it.
        const n = shim.recvMany(raw, rxBuf, rxSlot, batch, rxLens, rxSrcs);
        if (n === -9) throw new Error('the raw socket was closed');
        let k = 0;
        for (let i = 0; i < n; i++) {
          const off = i * rxSlot;
          const len = rxLens[i]!;
          if (len > rxSlot) {
            drops.malformed++;
            continue;
          }
          const why = decapsulate(rxBuf, off, len, local, table, mtu, d);
          if (why) {
            drops[why]++;
            continue;
          }
          const c = ctr[d.peer]!;
          c.rxPackets += d.gsoSize > 0 ? Math.ceil((d.innerLen - d.hdrLen) / d.gsoSize) : 1;
          c.rxBytes += d.outerLen;
          writeVnetHeader(rxBuf, d.innerOff - VNET_HLEN, d);
          rxOffs[k] = d.innerOff - VNET_HLEN;
          rxWrite[k] = d.innerLen + VNET_HLEN;
          k++;
        }
        if (k > 0) {
          const ok = shim.writeCoalesced(tun, rxBuf, rxOffs, rxWrite, k, rxStats);
          if (ok < k) drops.tunWriteError += k - ok;
          offload.tunWrites += rxStats[0]!;
          offload.rxMerged += rxStats[1]!;
          rxStats[0] = rxStats[1] = 0;
        }
      }

      for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
        const msg = m.message as ToWorker;
        if (msg.type === 'peers') setPeers(msg.peers);
        else if (msg.type === 'counters') {
          post(snapshot());
          lastPost = Date.now();
        }
      }
      const now = Date.now();
      if (now - lastPost >= 1000) {
        post(snapshot());
        lastPost = now;
      }
    }
  } finally {
    post(snapshot());
    shim.close(raw);
    shim.close(tun);
  }
}

// Started as a worker: run until told to stop; a failure is reported, then the thread exits.
if (workerData && (workerData as { addonPath?: unknown }).addonPath) {
  const cfg = workerData as WorkerConfig;
  try {
    runLoop(cfg);
  } catch (e) {
    cfg.port.postMessage({ type: 'fatal', message: (e as Error).message } satisfies FromWorker);
  }
  cfg.port.close();
}
