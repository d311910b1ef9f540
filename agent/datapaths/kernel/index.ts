// The kernel datapath: an `ipip` device made by iproute2; the kernel encapsulates.
// The production default wherever the ipip module exists.
import { runCommand, mustRun, ipBatch } from '../../host/command';
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

  async ensure(host: DatapathHost): Promise<void> {
    const show = await runCommand('ip', ['-json', '-details', 'link', 'show', 'dev', host.tunnelDevice]);
    let exists = false;
    if (show.code === 0) {
      const [link] = JSON.parse(show.stdout) as Array<{ linkinfo?: { info_kind?: string; info_data?: { local?: string } } }>;
      const right = link?.linkinfo?.info_kind === 'ipip' && link.linkinfo.info_data?.local === host.localAddress;
      if (right) exists = true;
      else await mustRun('ip', ['link', 'del', 'dev', host.tunnelDevice]);
    }
    const result = await ipBatch(exists ? kernelTunnelRepairBatch(host) : kernelTunnelBatch(host));
    if (result.code !== 0) throw new Error(`creating ${host.tunnelDevice} failed: ${result.stderr.trim()}`);
  }

  // The kernel reads peers from the routing table alone: nothing to keep in sync.
  async setPeers(_peers: readonly DatapathPeer[]): Promise<void> {}

  async counters(): Promise<DatapathCounters> {
    return { peers: [], dropped: 0 };
  }

  async close(): Promise<void> {}

  async teardown(host: DatapathHost): Promise<void> {
    await runCommand('ip', ['link', 'del', 'dev', host.tunnelDevice]);
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
