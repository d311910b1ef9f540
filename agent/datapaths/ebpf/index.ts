// The eBPF datapath: kernel-ipip wire format from tc programs, for kernels without the ipip
// module. The programs (podnet-ipip.bpf.o) and their loader (podnet-bpf) ship beside the
// agent bundle; see bpf/podnet-ipip.bpf.c and native/podnet-bpf.c for what they do.
//
// State lives in the kernel, pinned under pinDir: this class holds nothing that a restarted
// agent would need. ensure() adopts what is attached (the loader compares program tags and
// maps) and never interrupts traffic; peers and local pods are map updates in place.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
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
import { BPFFS_MOUNT } from '../../../src/model';
import { CommandError, execRunner, mustRun, type Runner } from '../../host/runner';
import {
  DEFAULT_PIN_DIR,
  attachArgs,
  detachArgs,
  ebpfHealthProblems,
  parseAttach,
  parseLoaderCounters,
  parseLoaderStatus,
  peersSyncInput,
  podsSyncInput,
  toDatapathCounters,
  type AttachAction,
  type LoaderCounters,
  type LoaderStatus,
} from './loader';
import { diffPods, discoverLocalPods, isEmptyDiff, type LocalPod } from './local-pods';

export interface EbpfOptions {
  /** The podnet-bpf loader. Default: beside the running agent bundle. */
  readonly loaderPath?: string;
  /** The BPF object. Default: podnet-ipip.bpf.o beside the loader. */
  readonly objectPath?: string;
  /** Where programs and maps are pinned (must be on a bpffs). Default /sys/fs/bpf/podnet. */
  readonly pinDir?: string;
  /** The CNI bridge whose pods get the fast path. Default cni0. */
  readonly bridge?: string;
  /** How often local pods are re-read as a safety net (ms); 0 = only on ensure()/refresh(). Default 30000: the agent calls refresh() on every link event. */
  readonly podSyncIntervalMs?: number;
  readonly run?: Runner;
  readonly log?: (line: string) => void;
}

function defaultLoaderPath(): string {
  return path.join(__dirname, 'podnet-bpf');
}

interface Resolved {
  readonly loader: string;
  readonly object: string;
  readonly pinDir: string;
  readonly bridge: string;
  readonly interval: number;
  readonly run: Runner;
  readonly log: (line: string) => void;
}

function resolve(o: EbpfOptions): Resolved {
  const loader = o.loaderPath ?? defaultLoaderPath();
  return {
    loader,
    object: o.objectPath ?? path.join(path.dirname(loader), 'podnet-ipip.bpf.o'),
    pinDir: o.pinDir ?? DEFAULT_PIN_DIR,
    bridge: o.bridge ?? 'cni0',
    interval: o.podSyncIntervalMs ?? 30_000,
    run: o.run ?? execRunner,
    log: o.log ?? (() => undefined),
  };
}

/** The bpffs mount point that holds `dir`, or undefined (reads /proc/self/mounts). */
export function bpffsMountFor(dir: string, mountsText: string): string | undefined {
  let best: string | undefined;
  for (const line of mountsText.split('\n')) {
    const [, mnt, fstype] = line.split(' ');
    if (fstype !== 'bpf' || !mnt) continue;
    const m = mnt.replace(/\\040/g, ' ');
    if ((dir === m || dir.startsWith(m.endsWith('/') ? m : `${m}/`)) && (!best || m.length > best.length)) best = m;
  }
  return best;
}

export class EbpfDatapath implements Datapath {
  readonly kind = 'ebpf' as const;
  private readonly o: Resolved;
  private nodeByAddress = new Map<string, string>();
  private timer?: NodeJS.Timeout;
  private syncing?: Promise<void>;
  /** What we last wrote to pn_pods (undefined: not read yet). */
  private podTable?: LocalPod[];
  /** What the last ensure() did to each program (for status). */
  lastAttach?: { egress: AttachAction; ingress: AttachAction };

  constructor(
    private readonly host: DatapathHost,
    options: EbpfOptions = {},
  ) {
    this.o = resolve(options);
  }

  private loader(args: readonly string[], input?: string): Promise<string> {
    return mustRun(this.o.run, this.o.loader, args, { input, timeoutMs: 30_000 });
  }

  async ensure(): Promise<void> {
    const host = this.host;
    await this.ensureTunnel();
    await this.ensureBpffs();
    this.lastAttach = parseAttach(
      await this.loader(
        attachArgs({
          pinDir: this.o.pinDir,
          object: this.o.object,
          tunnelDevice: host.tunnelDevice,
          underlayDevice: host.underlayDevice,
          localAddress: host.localAddress,
        }),
      ),
    );
    // Adopting is the steady state (every full reconcile); log only when something changed.
    if (this.lastAttach.egress !== 'adopted' || this.lastAttach.ingress !== 'adopted')
      this.o.log(`ebpf: egress ${this.lastAttach.egress}, ingress ${this.lastAttach.ingress}`);
    await this.syncPods();
    if (this.o.interval > 0 && !this.timer) {
      this.timer = setInterval(() => {
        this.syncPods().catch((e: unknown) => this.o.log(`ebpf: pod sync failed: ${(e as Error).message}`));
      }, this.o.interval);
      this.timer.unref();
    }
  }

  /** flannel.ipip as a persistent TUN nobody reads: without the program it drops (fails closed). */
  private ensureTunnel(): Promise<void> {
    return ensurePersistentTun(this.o.run, this.host, this.o.log, 'ebpf');
  }

  private async ensureBpffs(): Promise<void> {
    // Through the runner, like every other host access, so the class can drive a remote host.
    const m = await this.o.run('cat', ['/proc/self/mounts']);
    if (m.code !== 0) return; // cannot tell: let the loader's own check speak
    if (bpffsMountFor(this.o.pinDir, m.stdout)) return;
    // Never mounted here: in the unit's own mount namespace a bpffs, and every pin in it, would
    // die with this process (review finding 21). The unit's ExecStartPre mounts the host's.
    if (this.o.pinDir.startsWith(`${BPFFS_MOUNT}/`))
      throw new Error(
        `${this.o.pinDir} is not on a bpf filesystem: no bpffs is mounted on ${BPFFS_MOUNT}, and the agent's unit mounts the host's before the agent starts (it failed, or the agent runs outside its unit): mount one there (mount -t bpf bpf ${BPFFS_MOUNT})`,
      );
    throw new Error(`${this.o.pinDir} is not on a bpf filesystem: mount one (mount -t bpf bpf <dir>) or choose another pinDir`);
  }

  /** A link event may be a pod's veth coming or going. */
  refresh(): Promise<void> {
    return this.syncPods();
  }

  async setPeers(peers: readonly DatapathPeer[]): Promise<void> {
    const remote = peers.filter((p) => p.address !== this.host.localAddress);
    const input = peersSyncInput(remote); // validates before anything is touched
    await this.loader(['--pin-dir', this.o.pinDir, 'peers-sync'], input);
    this.nodeByAddress = new Map(remote.map((p) => [p.address, p.node]));
  }

  /** Re-reads local pods and writes the difference to pn_pods (skipped when nothing changed). */
  async syncPods(): Promise<void> {
    if (this.syncing) return this.syncing;
    this.syncing = (async () => {
      const desired = await discoverLocalPods(this.o.run, { bridge: this.o.bridge, podCidr: this.host.podCidr });
      if (this.podTable && isEmptyDiff(diffPods(desired, this.podTable))) return;
      await this.loader(['--pin-dir', this.o.pinDir, 'pods-sync'], podsSyncInput(desired));
      this.podTable = desired;
    })().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  async loaderCounters(): Promise<LoaderCounters> {
    return parseLoaderCounters(await this.loader(['--pin-dir', this.o.pinDir, 'counters', '--json']));
  }

  async counters(): Promise<DatapathCounters> {
    return toDatapathCounters(await this.loaderCounters(), this.nodeByAddress);
  }

  async status(): Promise<LoaderStatus> {
    return parseLoaderStatus(
      await this.loader([
        '--pin-dir',
        this.o.pinDir,
        'status',
        '--tunnel-dev',
        this.host.tunnelDevice,
        '--underlay-dev',
        this.host.underlayDevice,
      ]),
    );
  }

  /** Attached and counting: the loader's status shows both programs and every map, and the counters read. */
  async health(): Promise<string[]> {
    if (!this.host) return ['not set up'];
    const problems = ebpfHealthProblems(await this.status(), this.host);
    if (problems.length === 0) await this.loaderCounters();
    return problems;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.syncing;
    // Programs and maps stay attached and pinned: traffic keeps flowing while the agent is away.
  }

  async teardown(): Promise<void> {
    const host = this.host;
    await this.close();
    const r = await this.o.run(this.o.loader, detachArgs(this.o.pinDir, host.tunnelDevice, host.underlayDevice), { timeoutMs: 30_000 });
    // 127: no loader on this host (never installed): nothing of ours can be attached either.
    if (r.code !== 0 && r.code !== 127)
      throw new CommandError([this.o.loader, ...detachArgs(this.o.pinDir, host.tunnelDevice, host.underlayDevice)], r);
    await removePersistentTun(this.o.run, host.tunnelDevice);
    // A clsact qdisc attaching may have added is the agent teardown's to judge (ownership record).
    this.podTable = undefined;
  }
}

/** Exit status of `podnet-bpf probe` when this kernel cannot do tc BPF (PROBE_UNSUPPORTED in podnet-bpf.c). */
export const PROBE_UNSUPPORTED_EXIT = 3;

/**
 * Can the eBPF datapath run here? Loads a two-instruction tc program and an LPM map; attaches
 * nothing. Not supported when the kernel refuses the program or map type; failed when the
 * bundle lacks the loader or object, or the kernel refused for another reason (EPERM: no
 * CAP_BPF, a seccomp filter) that says nothing of what it supports.
 */
export async function probeEbpf(options: EbpfOptions = {}): Promise<ProbeResult> {
  const o = resolve(options);
  if (!existsSync(o.loader)) return probeFailed(`loader ${o.loader} is missing (the agent bundle ships it beside podnet-agent.js)`);
  if (!existsSync(o.object)) return probeFailed(`BPF object ${o.object} is missing`);
  const r = await o.run(o.loader, ['probe', '--object', o.object], { timeoutMs: 10_000 });
  if (r.code === 0) return SUPPORTED;
  const why = (r.stderr || r.stdout).trim().replace(/^podnet-bpf: /, '') || `podnet-bpf probe exited ${r.code}`;
  return r.code === PROBE_UNSUPPORTED_EXIT ? unsupported(why) : probeFailed(why);
}

export function makeEbpfDatapathFactory(options: EbpfOptions = {}): DatapathFactory {
  return {
    kind: 'ebpf',
    probe: () => probeEbpf(options),
    create: (host, log) => new EbpfDatapath(host, { ...options, log: options.log ?? log }),
  };
}

export const ebpfDatapathFactory: DatapathFactory = makeEbpfDatapathFactory();
