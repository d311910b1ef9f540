// The kernel datapath: an `ipip` device made by iproute2; the kernel encapsulates.
// The production default wherever the ipip module exists.
import { parseLinks } from '../../../src/host/live-state';
import { ipBatch, runCommand } from '../../host/command';
import { mustRun, type Runner } from '../../host/runner';
import type { Datapath, DatapathCounters, DatapathFactory, DatapathHost, DatapathPeer, ProbeResult } from '../datapath';

/** The exact iproute2 batch that creates flannel.ipip as flanneld's ipip backend does. */
export function kernelTunnelBatch(host: DatapathHost): string[] {
  return [
    `link add ${host.tunnelDevice} type ipip remote any local ${host.localAddress} ttl inherit nopmtudisc`,
    `link set ${host.tunnelDevice} mtu ${host.mtu}`,
    `addr replace ${host.tunnelAddress} dev ${host.tunnelDevice}`,
    `link set ${host.tunnelDevice} up`,
  ];
}

/** Repairs an existing device of the right kind (MTU, address, up) without recreating it. */
export function kernelTunnelRepairBatch(host: DatapathHost): string[] {
  return kernelTunnelBatch(host).slice(1);
}

const PROBE_DEVICE = 'podnet-probe0';

export class KernelDatapath implements Datapath {
  readonly kind = 'kernel' as const;

  /** `run` defaults to the agent's own runner; tests pass a fake. */
  constructor(private readonly run: Runner = runCommand) {}

  async ensure(host: DatapathHost): Promise<void> {
    const show = await this.run('ip', ['-json', '-details', 'link', 'show', 'dev', host.tunnelDevice]);
    let exists = false;
    if (show.code === 0) {
      const [link] = parseLinks(show.stdout);
      const right = link?.kind === 'ipip' && link.ipipLocal === host.localAddress;
      if (right) exists = true;
      else await mustRun(this.run, 'ip', ['link', 'del', 'dev', host.tunnelDevice]);
    }
    const result = await ipBatch(this.run, exists ? kernelTunnelRepairBatch(host) : kernelTunnelBatch(host));
    if (result.code !== 0) throw new Error(`creating ${host.tunnelDevice} failed: ${result.stderr.trim()}`);
  }

  // The kernel reads peers from the routing table alone: nothing to keep in sync.
  async setPeers(_peers: readonly DatapathPeer[]): Promise<void> {}

  async counters(): Promise<DatapathCounters> {
    return { peers: [], dropped: 0 };
  }

  async close(): Promise<void> {}

  async teardown(host: DatapathHost): Promise<void> {
    await this.run('ip', ['link', 'del', 'dev', host.tunnelDevice]);
  }
}

export const kernelDatapathFactory: DatapathFactory = {
  kind: 'kernel',
  async probe(): Promise<ProbeResult> {
    // A probe device left by an agent killed mid-probe would make every later add fail.
    await runCommand('ip', ['link', 'del', PROBE_DEVICE]);
    const add = await runCommand('ip', ['link', 'add', PROBE_DEVICE, 'type', 'ipip', 'remote', 'any', 'local', '127.0.0.1']);
    if (add.code !== 0) return { ok: false, reason: `no ipip support in this kernel (ip link add type ipip: ${add.stderr.trim() || `exit ${add.code}`})` };
    await runCommand('ip', ['link', 'del', PROBE_DEVICE]);
    return { ok: true };
  },
  create: () => new KernelDatapath(),
};
