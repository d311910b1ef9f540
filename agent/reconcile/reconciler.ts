// The agent's control loop: converge at start, then repair whatever differs, triggered by
// netlink events and file changes, with a periodic full check as the safety net.
import { writeFile } from 'node:fs/promises';
import { writeFileAtomic } from '../host/atomic-file';
import type { DesiredHostState, UnmanagedConfig } from '../../src/model';
import { diffHost, type HostDifference } from '../../src/planner/host-diff';
import { ipBatch, runCommand } from '../host/command';
import { mustRun } from '../host/runner';
import { readLiveState } from '../host/read-live-state';
import type { Datapath, DatapathPeer } from '../datapaths/datapath';
import { planFixes } from './fixes';
import { enableIpForward } from '../host/ip-forward';

export function tunnelledPeers(state: DesiredHostState): DatapathPeer[] {
  return state.peers.filter((p) => p.tunnelled).map((p) => ({ node: p.node, address: p.address, podCidr: p.podCidr }));
}

/** Has a network manager re-read its configuration; one that is not running needs nothing. */
export async function reloadManager(manager: UnmanagedConfig['manager']): Promise<void> {
  if (manager === 'systemd-networkd') await runCommand('networkctl', ['reload']);
  else await runCommand('nmcli', ['general', 'reload', 'conf']);
}

export interface ReconcileOutcome {
  /** What differed before this pass (empty when in sync). */
  readonly repaired: readonly HostDifference[];
  /** What still differs after it (should be empty). */
  readonly remaining: readonly HostDifference[];
}

/**
 * `full` re-asserts the datapath (programs, maps, device) and its peers; `light` only diffs
 * the host's network state, and lets the datapath re-read what changes on its own (local
 * pods). Netlink and file events ask for light passes; start, tc events and the periodic
 * safety net ask for full ones. Keeping event passes light keeps an idle agent cheap.
 */
export type PassKind = 'full' | 'light';

export class Reconciler {
  private running: Promise<ReconcileOutcome> | undefined;
  private queued: PassKind | undefined;

  /** `datapath` is bound to this host already (made from toDatapathHost(state)). */
  constructor(
    private readonly state: DesiredHostState,
    private readonly datapath: Datapath,
    private readonly log: (line: string) => void,
  ) {}

  /** Runs one pass; concurrent calls coalesce into at most one more pass (full if any asked). */
  reconcile(kind: PassKind = 'full'): Promise<ReconcileOutcome> {
    if (this.running) {
      this.queued = this.queued === 'full' || kind === 'full' ? 'full' : 'light';
      return this.running;
    }
    this.running = (async () => {
      try {
        let outcome = await this.pass(kind);
        while (this.queued) {
          const next = this.queued;
          this.queued = undefined;
          outcome = await this.pass(next);
        }
        return outcome;
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  /** Resolves when no pass is running (SIGTERM waits for this, so it never stops a repair half-way). */
  async settle(): Promise<void> {
    while (this.running) await this.running.catch(() => undefined);
  }

  private async pass(kind: PassKind): Promise<ReconcileOutcome> {
    if (kind === 'full') {
      await this.datapath.ensure();
      await this.datapath.setPeers(tunnelledPeers(this.state));
    } else {
      await this.datapath.refresh?.();
    }
    const live = await readLiveState(this.state.network);
    const diffs = diffHost(this.state, live);
    if (diffs.length === 0) return { repaired: [], remaining: [] };

    for (const d of diffs) this.log(`drift ${d.kind} ${d.subject}${d.expected ? ` expected=${d.expected}` : ''}${d.actual ? ` actual=${d.actual}` : ''}`);
    const plan = planFixes(this.state, diffs, live);
    if (plan.recreateTunnel) await runCommand('ip', ['link', 'del', 'dev', this.state.tunnel.device]);
    if (plan.ensureTunnel) {
      await this.datapath.ensure();
      await this.datapath.setPeers(tunnelledPeers(this.state));
    }
    if (plan.enableIpForward) await enableIpForward(this.state.network);
    for (const dev of plan.interfaceForwarding) await writeFile(`/proc/sys/net/ipv4/conf/${dev}/forwarding`, '1\n').catch((e: Error) => this.log(`forwarding on ${dev}: ${e.message}`));
    for (const [file, ...args] of plan.firewallInserts) {
      const r = await runCommand(file!, args);
      if (r.code !== 0) this.log(`${file} ${args.join(' ')}: ${r.stderr.trim()}`);
    }
    const batch = await ipBatch(runCommand, plan.ipBatch);
    if (batch.code !== 0) this.log(`ip -batch reported: ${batch.stderr.trim()}`);
    for (const c of plan.unmanagedConfigs) {
      await writeFileAtomic(c.path, c.content);
      await reloadManager(c.manager);
    }
    if (plan.writeSubnetEnv) await writeFileAtomic(this.state.subnetEnv.path, this.state.subnetEnv.content);
    if (plan.nftScript) await mustRun(runCommand, 'nft', ['-f', '-'], { input: plan.nftScript });

    const remaining = diffHost(this.state, await readLiveState(this.state.network));
    for (const d of remaining) this.log(`still differs after repair: ${d.kind} ${d.subject}`);
    return { repaired: diffs, remaining };
  }
}
