// The kernel datapath: an `ipip` device made by iproute2; the kernel encapsulates.
// The production default wherever the ipip module exists.
import { readFile } from 'node:fs/promises';
import { parseAddresses, parseLinks, type LiveAddress, type LiveLink } from '../../../src/host/live-state';
import { ipBatch, runCommand } from '../../host/command';
import { mustRun, type Runner } from '../../host/runner';
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
import { droppedTotal } from '../../../src/model/drop-reasons';
import { PeerFilter } from './peer-filter';

/** The exact iproute2 batch that creates flannel.ipip as flanneld's ipip backend does. */
export function kernelTunnelBatch(host: DatapathHost): string[] {
  return [
    `link add ${host.tunnelDevice} type ipip remote any local ${host.localAddress} ttl inherit nopmtudisc`,
    `link set ${host.tunnelDevice} mtu ${host.mtu}`,
    `addr replace ${host.tunnelAddress} dev ${host.tunnelDevice}`,
    `link set ${host.tunnelDevice} up`,
  ];
}

/**
 * What an existing device of the right kind needs (MTU, address, up), without recreating it:
 * only the lines whose state differs, so a pass over a right device writes nothing. Every
 * write, even one that changes nothing (`addr replace` of the same address), makes netlink
 * events, and those wake this agent's own watcher for one more pass (each full pass used to
 * cost a second one that way).
 */
export function kernelTunnelRepairBatch(host: DatapathHost, link: LiveLink, addresses: readonly LiveAddress[]): string[] {
  const [, mtu, addr, up] = kernelTunnelBatch(host) as [string, string, string, string];
  return [
    ...(link.mtu === host.mtu ? [] : [mtu]),
    ...(addresses.some((a) => a.device === host.tunnelDevice && a.cidr === host.tunnelAddress) ? [] : [addr]),
    ...(link.up ? [] : [up]),
  ];
}

export const PROBE_DEVICE = 'podnet-probe0';

export interface KernelOptions {
  /** How commands run. Default: the agent's own runner (execFile, 10 s timeout). */
  readonly run?: Runner;
  /** How a sysfs file is read (the device's statistics). Default: readFile. */
  readonly readSysfs?: (path: string) => Promise<string>;
}

export class KernelDatapath implements Datapath {
  readonly kind = 'kernel' as const;
  private readonly run: Runner;
  private readonly readSysfs: (path: string) => Promise<string>;
  /** Drops protocol 4 from non-peers, which `remote any` would decapsulate (peer-filter.ts). */
  private readonly filter: PeerFilter;

  constructor(
    private readonly host: DatapathHost,
    options: KernelOptions = {},
  ) {
    this.run = options.run ?? runCommand;
    this.readSysfs = options.readSysfs ?? ((path) => readFile(path, 'utf8'));
    this.filter = new PeerFilter(this.run);
  }

  async ensure(): Promise<void> {
    const host = this.host;
    // `addr show` with -details: the link (kind, local address, MTU, flags) and its addresses in one read.
    const show = await this.run('ip', ['-json', '-details', 'addr', 'show', 'dev', host.tunnelDevice]);
    let batch = kernelTunnelBatch(host);
    if (show.code === 0) {
      const [link] = parseLinks(show.stdout);
      const right = link?.kind === 'ipip' && link.ipipLocal === host.localAddress;
      if (right) batch = kernelTunnelRepairBatch(host, link, parseAddresses(show.stdout));
      else await mustRun(this.run, 'ip', ['link', 'del', 'dev', host.tunnelDevice]);
    }
    if (batch.length > 0) {
      const result = await ipBatch(this.run, batch);
      if (result.code !== 0) throw new Error(`creating ${host.tunnelDevice} failed: ${result.stderr.trim()}`);
    }
    await this.filter.ensure();
  }

  // The kernel reads peers from the routing table; only the non-peer filter needs them.
  async setPeers(peers: readonly DatapathPeer[]): Promise<void> {
    await this.filter.setPeers(peers.map((p) => p.address));
  }

  /**
   * `unknownSource` from the peer filter; `ecn` is what the kernel itself dropped on
   * decapsulation (outer CE on a not-ECT inner packet: ip_tunnel_rcv counts it in the device's
   * rx_frame_errors, and logs "non-ECT from ..."), the same reason the other datapaths count.
   * The device's count starts again at 0 when the device is recreated.
   */
  async counters(): Promise<DatapathCounters> {
    const drops = { unknownSource: await this.filter.dropped(), ecn: await this.readRxFrameErrors() };
    return { peers: [], dropped: droppedTotal(drops), drops };
  }

  /** The device's rx_frame_errors from sysfs (a file read: the agent reads it every few seconds, an exec would cost more). */
  private async readRxFrameErrors(): Promise<number> {
    const text = await this.readSysfs(`/sys/class/net/${this.host.tunnelDevice}/statistics/rx_frame_errors`).catch(() => '0');
    return Number.parseInt(text.trim(), 10) || 0;
  }

  async close(): Promise<void> {}

  async teardown(): Promise<void> {
    await this.run('ip', ['link', 'del', 'dev', this.host.tunnelDevice]);
    await this.filter.remove();
  }
}

/**
 * Can this kernel make ipip devices? Adds and deletes a probe device. iproute2 says "Unknown
 * device type" (or "not supported") when the ipip module is absent: not supported. Anything
 * else (no permission, no `ip`) means the probe could not tell.
 */
export async function probeKernel(run: Runner = runCommand): Promise<ProbeResult> {
  // A probe device left by an agent killed mid-probe would make every later add fail.
  await run('ip', ['link', 'del', PROBE_DEVICE]);
  const add = await run('ip', ['link', 'add', PROBE_DEVICE, 'type', 'ipip', 'remote', 'any', 'local', '127.0.0.1']);
  if (add.code !== 0) {
    const why = add.stderr.trim() || `exit ${add.code}`;
    if (/unknown device type|not supported/i.test(why))
      return unsupported(`no ipip support in this kernel (ip link add type ipip: ${why})`);
    return probeFailed(`ip link add type ipip: ${why}`);
  }
  await run('ip', ['link', 'del', PROBE_DEVICE]);
  return SUPPORTED;
}

export function makeKernelDatapathFactory(options: KernelOptions = {}): DatapathFactory {
  return {
    kind: 'kernel',
    probe: () => probeKernel(options.run),
    create: (host) => new KernelDatapath(host, options),
  };
}

export const kernelDatapathFactory: DatapathFactory = makeKernelDatapathFactory();
