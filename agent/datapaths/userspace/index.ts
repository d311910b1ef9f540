// The userspace datapath: the last resort, for hosts with neither the ipip module nor BPF.
// flannel.ipip is a persistent TUN device (same name, MTU, address and routes as the other
// datapaths); a worker thread (packet-worker.ts) reads it, wraps each packet in the kernel-ipip
// outer header (ipip-codec.ts) and sends it on a raw protocol-4 socket, and unwraps protocol 4
// from known peers back into the TUN. The native shim (native/podnet-tun.c) does syscalls only.
//
// Shipped beside the agent bundle: podnet-tun.node (the shim) and podnet-userspace-worker.js
// (the worker bundle); both are found through __dirname, i.e. /usr/local/lib/podnet on hosts.
//
// The device outlives the agent: close() stops the worker (packets to the TUN are dropped while
// nobody reads it) and a restarted agent attaches to the same device by name. teardown()
// deletes it.
import { accessSync, closeSync, constants, existsSync, openSync } from 'node:fs';
import * as path from 'node:path';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import {
  probeFailed,
  SUPPORTED,
  unsupported,
  type Datapath,
  type DatapathCounters,
  type DatapathFactory,
  type DatapathHost,
  type DatapathPeer,
  type ProbeResult,
} from '../datapath';
import { ensurePersistentTun, removePersistentTun } from '../tun-device';
import { execRunner, mustRun, type Runner } from '../../host/runner';
import type { PeerSpec } from './ipip-codec';
import { droppedTotal, USERSPACE_DROP_REASONS, zeroDrops, type UserspaceDropReason } from '../../../src/model/drop-reasons';
import type { FromWorker, OffloadCounters, PeerCounterSnapshot, ToWorker, WorkerConfig } from './packet-worker';
import { loadShim } from './shim';

export interface UserspaceOptions {
  /** The N-API shim. Default: podnet-tun.node beside the running agent bundle. */
  readonly addonPath?: string;
  /** The worker bundle. Default: podnet-userspace-worker.js beside the running agent bundle. */
  readonly workerPath?: string;
  /** Packets per JS->native crossing (default 64). */
  readonly batch?: number;
  readonly run?: Runner;
  readonly log?: (line: string) => void;
}

interface Resolved {
  readonly addon: string;
  readonly worker: string;
  readonly batch: number;
  readonly run: Runner;
  readonly log: (line: string) => void;
}

function resolve(o: UserspaceOptions): Resolved {
  return {
    addon: o.addonPath ?? path.join(__dirname, 'podnet-tun.node'),
    worker: o.workerPath ?? path.join(__dirname, 'podnet-userspace-worker.js'),
    batch: o.batch ?? 64,
    run: o.run ?? execRunner,
    log: o.log ?? ((l) => process.stdout.write(`${new Date().toISOString()} ${l}\n`)),
  };
}

/** DatapathCounters plus drops by reason and what the TUN offloads did (`podnet-agent status --json`). */
export interface UserspaceCounters extends DatapathCounters {
  readonly drops: Readonly<Record<UserspaceDropReason, number>>;
  readonly offload?: Readonly<OffloadCounters>;
}

/** The Datapath shape, drops by reason and offload work; `dropped` by the shared rule (droppedTotal). */
export function toUserspaceCounters(
  peers: readonly PeerCounterSnapshot[],
  drops: Readonly<Record<UserspaceDropReason, number>>,
  offload?: Readonly<OffloadCounters>,
): UserspaceCounters {
  const dropped = droppedTotal(drops);
  return {
    peers: peers
      .map((p) => ({
        node: p.node,
        txPackets: p.txPackets,
        txBytes: p.txBytes,
        rxPackets: p.rxPackets,
        rxBytes: p.rxBytes,
        ...(p.pathMtu !== undefined ? { pathMtu: p.pathMtu } : {}),
        fragNeededRelayed: p.fragNeededRelayed ?? 0,
      }))
      .sort((a, b) => a.node.localeCompare(b.node)),
    dropped,
    drops: { ...drops },
    ...(offload ? { offload: { ...offload } } : {}),
  };
}

interface Running {
  readonly worker: Worker;
  readonly port: MessagePort;
  readonly control: Int32Array;
  readonly ifindex: string;
  /** Set when we asked it to stop (an exit is then not a failure). */
  stopping: boolean;
  readonly exited: Promise<void>;
}

const RESTART_FIRST_MS = 500;
const RESTART_MAX_MS = 30_000;

const emptyOffload = (): OffloadCounters => ({ tunReads: 0, txSegments: 0, tunWrites: 0, rxMerged: 0 });
const emptyDrops = (): Record<UserspaceDropReason, number> => zeroDrops(USERSPACE_DROP_REASONS);

/** What workers counted: peers by underlay address, drops by reason, offload work. */
interface CounterTotals {
  readonly peers: ReadonlyMap<string, PeerCounterSnapshot>;
  readonly drops: Readonly<Record<UserspaceDropReason, number>>;
  readonly offload: Readonly<OffloadCounters>;
}

/** A worker starts from zero: earlier workers' totals plus what the current one last posted. */
export function foldCounters(
  base: CounterTotals,
  last: {
    readonly peers: readonly PeerCounterSnapshot[];
    readonly drops: Readonly<Partial<Record<UserspaceDropReason, number>>>;
    readonly offload: Readonly<OffloadCounters>;
  },
): CounterTotals {
  const peers = new Map(base.peers);
  for (const p of last.peers) {
    const b = peers.get(p.address);
    peers.set(
      p.address,
      b
        ? {
            ...p,
            txPackets: b.txPackets + p.txPackets,
            txBytes: b.txBytes + p.txBytes,
            rxPackets: b.rxPackets + p.rxPackets,
            rxBytes: b.rxBytes + p.rxBytes,
            fragNeededRelayed: (b.fragNeededRelayed ?? 0) + (p.fragNeededRelayed ?? 0),
          }
        : p,
    );
  }
  const drops = emptyDrops();
  for (const k of USERSPACE_DROP_REASONS) drops[k] = base.drops[k] + (last.drops[k] ?? 0);
  const o = base.offload;
  const offload = {
    tunReads: o.tunReads + last.offload.tunReads,
    txSegments: o.txSegments + last.offload.txSegments,
    tunWrites: o.tunWrites + last.offload.tunWrites,
    rxMerged: o.rxMerged + last.offload.rxMerged,
  };
  return { peers, drops, offload };
}

export class UserspaceDatapath implements Datapath {
  readonly kind = 'userspace' as const;
  private readonly o: Resolved;
  private peers: PeerSpec[] = [];
  private running?: Running;
  private starting?: Promise<void>;
  private closed = false;
  private restartTimer?: NodeJS.Timeout;
  /** Next restart delay: 500 ms after a worker that ran, doubling while restarts fail, up to 30 s. */
  private restartDelayMs = RESTART_FIRST_MS;
  /** Why the worker is not running (for health), until one is ready again. */
  private workerFault?: string;
  /** Counters of earlier workers (a restarted worker starts from zero). */
  private base: CounterTotals = { peers: new Map(), drops: emptyDrops(), offload: emptyOffload() };
  private last: { peers: PeerCounterSnapshot[]; drops: Record<UserspaceDropReason, number>; offload: OffloadCounters } = {
    peers: [],
    drops: emptyDrops(),
    offload: emptyOffload(),
  };
  private waiters: ((c: FromWorker & { type: 'counters' }) => void)[] = [];

  constructor(
    private readonly host: DatapathHost,
    options: UserspaceOptions = {},
  ) {
    this.o = resolve(options);
  }

  /** Serialized: the reconciler and a worker restart may both call it. */
  ensure(): Promise<void> {
    const next = this.ensureQueue.catch(() => undefined).then(() => this.ensureOnce());
    this.ensureQueue = next;
    return next;
  }

  private ensureQueue: Promise<void> = Promise.resolve();

  private async ensureOnce(): Promise<void> {
    const host = this.host;
    this.closed = false;
    await this.ensureTunnel();
    const ifindex = (await mustRun(this.o.run, 'cat', [`/sys/class/net/${host.tunnelDevice}/ifindex`])).trim();
    if (this.running && this.running.ifindex !== ifindex) {
      this.o.log(`userspace: ${host.tunnelDevice} was recreated; reattaching`);
      await this.stopWorker();
    }
    if (!this.running) {
      this.starting ??= this.startWorker(host, ifindex).finally(() => {
        this.starting = undefined;
      });
      await this.starting;
    }
  }

  /** flannel.ipip as a persistent TUN, like the ebpf datapath's; here the worker reads it. */
  private ensureTunnel(): Promise<void> {
    return ensurePersistentTun(this.o.run, this.host, this.o.log, 'userspace');
  }

  private startWorker(host: DatapathHost, ifindex: string): Promise<void> {
    const { port1, port2 } = new MessageChannel();
    const control = new SharedArrayBuffer(4);
    const cfg: WorkerConfig = {
      addonPath: this.o.addon,
      tunnelDevice: host.tunnelDevice,
      localAddress: host.localAddress,
      mtu: host.mtu,
      podCidr: host.podCidr,
      tunnelAddress: host.tunnelAddress,
      clusterCidr: host.clusterCidr,
      peers: this.peers,
      control,
      port: port2,
      batch: this.o.batch,
    };
    const worker = new Worker(this.o.worker, { workerData: cfg, transferList: [port2], stdout: false, stderr: false });
    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    const ready = new Promise<void>((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    let fatal: string | undefined;
    let wasReady = false;
    const exited = new Promise<void>((res) => worker.once('exit', () => res()));
    const r: Running = { worker, port: port1, control: new Int32Array(control), ifindex, stopping: false, exited };
    port1.on('message', (m: FromWorker) => {
      if (m.type === 'ready') {
        wasReady = true;
        readyResolve();
      } else if (m.type === 'counters') {
        this.last = { peers: m.peers, drops: m.drops, offload: m.offload ?? emptyOffload() };
        for (const w of this.waiters.splice(0)) w(m);
      } else if (m.type === 'fatal') {
        fatal = m.message;
        readyReject(new Error(`userspace datapath: ${m.message}`));
      }
    });
    worker.on('error', (e) => {
      fatal ??= e.message;
      readyReject(e);
    });
    worker.once('exit', (code) => {
      port1.close();
      // What this worker counted becomes the base of the next one's.
      this.base = foldCounters(this.base, this.last);
      this.last = { peers: [], drops: emptyDrops(), offload: emptyOffload() };
      if (this.running === r) this.running = undefined;
      readyReject(new Error(`userspace datapath: worker exited (${fatal ?? `code ${code}`}) before it was ready`));
      if (!r.stopping && wasReady) {
        this.workerFault = `packet worker stopped: ${fatal ?? `exit code ${code}`}`;
        this.o.log(`userspace: packet worker stopped unexpectedly: ${fatal ?? `exit code ${code}`}; restarting`);
        this.scheduleRestart();
      }
    });
    this.running = r;
    return ready.then(
      () => {
        this.workerFault = undefined;
        this.restartDelayMs = RESTART_FIRST_MS;
        this.o.log(
          `userspace: packet worker running on ${host.tunnelDevice} (ifindex ${ifindex}), raw IPIP socket on ${host.localAddress}`,
        );
      },
      async (e: Error) => {
        r.stopping = true;
        await worker.terminate();
        throw e;
      },
    );
  }

  /**
   * Restarts the worker after `restartDelayMs`, doubling the delay while restarts fail (a
   * worker that cannot bind, say after the node's address changed, must not be retried, and
   * logged, twice a second forever).
   */
  private scheduleRestart(): void {
    if (this.closed || this.restartTimer) return;
    const delay = this.restartDelayMs;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.closed) return;
      this.ensure().catch((e: Error) => {
        this.workerFault = `packet worker cannot start: ${e.message}`;
        this.restartDelayMs = Math.min(RESTART_MAX_MS, this.restartDelayMs * 2);
        this.o.log(`userspace: restart failed: ${e.message}; next try in ${this.restartDelayMs / 1000} s`);
        this.scheduleRestart();
      });
    }, delay);
    this.restartTimer.unref();
  }

  /** The worker runs (and so reads the TUN and the raw socket). */
  async health(): Promise<string[]> {
    if (this.running && !this.starting) return [];
    return [this.workerFault ?? 'packet worker is not running'];
  }

  private async stopWorker(): Promise<void> {
    const r = this.running;
    if (!r) return;
    r.stopping = true;
    Atomics.store(r.control, 0, 1);
    // The loop polls with a 50 ms timeout; give it time to close its descriptors cleanly.
    const t = setTimeout(() => void r.worker.terminate(), 2000);
    await r.exited;
    clearTimeout(t);
    if (this.running === r) this.running = undefined;
  }

  async setPeers(peers: readonly DatapathPeer[]): Promise<void> {
    this.peers = peers
      .filter((p) => p.address !== this.host.localAddress)
      .map((p) => ({ node: p.node, address: p.address, podCidr: p.podCidr }));
    this.running?.port.postMessage({ type: 'peers', peers: this.peers } satisfies ToWorker);
  }

  /** Fresh counters from the worker (asked for, up to 300 ms), else the last it posted. */
  async counters(): Promise<UserspaceCounters> {
    const r = this.running;
    if (r) {
      const fresh = new Promise<void>((res) => {
        const t = setTimeout(res, 300);
        this.waiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
      r.port.postMessage({ type: 'counters' } satisfies ToWorker);
      await fresh;
    }
    const { peers, drops, offload } = foldCounters(this.base, this.last);
    const current = new Set(this.peers.map((p) => p.address));
    return toUserspaceCounters(
      [...peers.values()].filter((p) => current.has(p.address)),
      drops,
      offload,
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    await this.starting?.catch(() => undefined);
    await this.stopWorker();
    // The persistent TUN, its address and routes stay: a restarted agent reattaches by name.
  }

  async teardown(): Promise<void> {
    await this.close();
    await removePersistentTun(this.o.run, this.host.tunnelDevice);
  }
}

/**
 * Can the userspace datapath run here? The shim and worker are present and load, /dev/net/tun
 * opens, and a raw protocol-4 socket can be opened and bound to this node's address. Creates
 * nothing: the socket is closed at once, no TUN device is attached. Not supported when the
 * kernel has no TUN driver or no raw IPv4 sockets; failed when a file is missing from the bundle
 * or the host refused (no permission, no such local address), which says nothing of support.
 */
export async function probeUserspace(host: DatapathHost, options: UserspaceOptions = {}): Promise<ProbeResult> {
  const o = resolve(options);
  if (!existsSync(o.addon)) return probeFailed(`native shim ${o.addon} is missing (the agent bundle ships it beside podnet-agent.js)`);
  if (!existsSync(o.worker)) return probeFailed(`worker bundle ${o.worker} is missing`);
  let shim;
  try {
    shim = loadShim(o.addon);
  } catch (e) {
    return probeFailed(`cannot load ${o.addon}: ${(e as Error).message}`);
  }
  try {
    accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
    closeSync(openSync('/dev/net/tun', 'r+'));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    // No device node, or a node with no driver behind it: this kernel has no TUN.
    const reason = `/dev/net/tun: ${err.message}`;
    return err.code === 'ENOENT' || err.code === 'ENODEV' || err.code === 'ENXIO' ? unsupported(reason) : probeFailed(reason);
  }
  try {
    shim.close(shim.openRaw(host.localAddress, 0));
  } catch (e) {
    // The shim throws "<call>: <strerror>"; these are the kernel lacking raw IPv4 sockets.
    const reason = `raw IPIP socket: ${(e as Error).message}`;
    return /not supported|not implemented/i.test((e as Error).message) ? unsupported(reason) : probeFailed(reason);
  }
  return SUPPORTED;
}

export function makeUserspaceDatapathFactory(options: UserspaceOptions = {}): DatapathFactory {
  return {
    kind: 'userspace',
    probe: (host) => probeUserspace(host, options),
    create: (host, log) => new UserspaceDatapath(host, { ...options, log: options.log ?? log }),
  };
}

export const userspaceDatapathFactory: DatapathFactory = makeUserspaceDatapathFactory();
