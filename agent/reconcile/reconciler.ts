// The agent's control loop: converge at start, then repair whatever differs, triggered by
// netlink events and file changes, with a periodic full check as the safety net.
//
// Besides the differences it repairs, every pass checks what no diff shows: that the chosen
// datapath is attached and counting (Datapath.health), and that the last attempt to set it up
// did not fail. A datapath fault stays until a pass sets the datapath up again, so a failed
// full pass is never followed by a light pass that looks converged (review #10).
import { writeFile } from 'node:fs/promises';
import { writeFileAtomic } from '../host/atomic-file';
import type { DesiredHostState, UnmanagedConfig } from '../../src/model';
import {
  conntrackBypassScript,
  conntrackBypassTableName,
  firewalldProtocolCall,
  firewalldSourceCall,
  interfaceForwardingPath,
  MANAGER_RELOAD,
} from '../../src/model';
import type { LiveHostState } from '../../src/host/live-state';
import { diffHost, type HostDifference } from '../../src/planner/host-diff';
import type { CommandResult } from '../../src/host/command-result';
import { ipBatch, runCommand } from '../host/command';
import { mustRun } from '../host/runner';
import { readLiveState } from '../host/read-live-state';
import type { Datapath, DatapathPeer } from '../datapaths/datapath';
import { isRepairable, planFixes } from './fixes';
import { enableIpForward } from '../host/ip-forward';
import { RepairBackoff, type BackoffEntry, type BackoffPolicy } from './backoff';
import { Ownership } from '../host/ownership';

/**
 * Every peer, direct ones included: with directRouting each node decides from its own routes,
 * so a peer this node reaches directly may still tunnel to it (it sees a gateway on its side),
 * and its packets must be decapsulated (kernel ipip's `remote any` takes them too). Traffic to a
 * direct peer never enters the tunnel device, so its entry is only ever used on receive.
 */
export function datapathPeers(state: DesiredHostState): DatapathPeer[] {
  return state.peers.map((p) => ({ node: p.node, address: p.address, podCidr: p.podCidr }));
}

/** Has a network manager re-read its configuration; one that is not running needs nothing. */
export async function reloadManager(manager: UnmanagedConfig['manager']): Promise<void> {
  const [file, ...args] = MANAGER_RELOAD[manager];
  await runCommand(file, args);
}

export interface ReconcileOutcome {
  /** What the passes of this call repaired (empty when in sync). */
  readonly repaired: readonly HostDifference[];
  /** What still differs after the last pass: not repairable, delayed by backoff, or undone meanwhile. */
  readonly remaining: readonly HostDifference[];
  /** Why traffic cannot flow although no difference says so (the datapath): empty when it can. */
  readonly problems: readonly string[];
}

/**
 * `full` re-asserts the datapath (programs, maps, device) and its peers; `light` only diffs
 * the host's network state, and lets the datapath re-read what changes on its own (local
 * pods). Netlink and file events ask for light passes; start, tc events and the periodic
 * safety net ask for full ones. Keeping event passes light keeps an idle agent cheap.
 */
export type PassKind = 'full' | 'light';

/** What a pass does to the host, apart from the datapath. The real one runs ip/nft; tests pass fakes. */
export interface HostEffects {
  readLive(): Promise<LiveHostState>;
  deleteLink(device: string): Promise<void>;
  enableIpForward(): Promise<void>;
  ipBatch(lines: readonly string[]): Promise<CommandResult>;
  writeSubnetEnv(): Promise<void>;
  /** Writes the CNI conflist (making its directory again if someone removed it). */
  writeCniConfig(): Promise<void>;
  replaceNft(script: string): Promise<void>;
  /** Sets net.ipv4.conf.<device>.forwarding to 1. */
  enableInterfaceForwarding(device: string): Promise<void>;
  /** Runs a command (iptables inserts, firewalld's D-Bus calls, nft -f -) with `input` on its stdin; a failure is the result, not an exception. */
  run(argv: readonly string[], input?: string): Promise<CommandResult>;
  /** Whether `device` has a clsact qdisc (to know whether the datapath added it). */
  hasClsact(device: string): Promise<boolean>;
}

export function hostEffects(state: DesiredHostState): HostEffects {
  return {
    readLive: () => readLiveState(state),
    deleteLink: async (device) => {
      await runCommand('ip', ['link', 'del', 'dev', device]);
    },
    enableIpForward: () => enableIpForward(),
    ipBatch: (lines) => ipBatch(runCommand, lines),
    writeSubnetEnv: () => writeFileAtomic(state.subnetEnv.path, state.subnetEnv.content),
    // The unit made the directory before the agent started; writeFileAtomic makes it again if
    // someone removed it since (its parent is writable to the agent).
    writeCniConfig: () => writeFileAtomic(state.cni.path, state.cni.content),
    replaceNft: async (script) => {
      await mustRun(runCommand, 'nft', ['-f', '-'], { input: script });
    },
    enableInterfaceForwarding: (device) => writeFile(interfaceForwardingPath(device), '1\n'),
    run: ([file, ...args], input) => runCommand(file!, args, input === undefined ? {} : { input }),
    hasClsact: async (device) => {
      const r = await runCommand('tc', ['qdisc', 'show', 'dev', device]);
      return r.code === 0 && /\bclsact\b/.test(r.stdout);
    },
  };
}

export interface ReconcilerOptions {
  readonly effects?: HostEffects;
  readonly backoff?: BackoffPolicy;
  /** What podnet created and found here (default: kept in memory only). */
  readonly ownership?: Ownership;
  /** Epoch ms (tests move time by hand). */
  readonly now?: () => number;
}

/** A datapath that could not be set up is tried again this soon (then as backoff allows). */
const DATAPATH_RETRY_MS = 1_000;

/** How long a refused firewalld call is retried (a restarting firewalld may not answer yet). */
const FIREWALLD_WAIT_MS = 5_000;

/** The backoff key for setting the datapath up (attach, worker start). */
export const DATAPATH_KEY = 'datapath';

const keyOf = (d: HostDifference): string => `${d.kind} ${d.subject}`;

/** One line for a difference, as logs and the status's degradedReasons show it. */
export function describeDifference(d: HostDifference): string {
  return `${d.kind} ${d.subject}${d.expected ? ` expected=${d.expected}` : ''}${d.actual ? ` actual=${d.actual}` : ''}`;
}

export class Reconciler {
  private running: Promise<ReconcileOutcome> | undefined;
  private queued: { kind: PassKind; sources: Set<string> } | undefined;
  private readonly effects: HostEffects;
  private readonly backoff: RepairBackoff;
  private readonly now: () => number;
  private readonly ownership: Ownership;
  /** Why the datapath is not set up, from the last attempt; undefined once an attempt succeeded. */
  private datapathFault: string | undefined = 'not set up yet';
  /** Differences seen in the previous pass: a persistent one is logged once, not on every event. */
  private seen = new Set<string>();
  private firstPassDone = false;
  private repairCount = 0;

  /** `datapath` is bound to this host already (made from toDatapathHost(state)). */
  constructor(
    private readonly state: DesiredHostState,
    private readonly datapath: Datapath,
    private readonly log: (line: string) => void,
    options: ReconcilerOptions = {},
  ) {
    this.effects = options.effects ?? hostEffects(state);
    this.backoff = new RepairBackoff(options.backoff);
    this.now = options.now ?? Date.now;
    this.ownership = options.ownership ?? Ownership.inMemory();
  }

  /** Every repair since the first pass (which sets the host up), event-driven ones included. */
  get repairs(): number {
    return this.repairCount;
  }

  /** Objects whose repairs are being delayed because something keeps undoing them. */
  delayed(): BackoffEntry[] {
    return this.backoff.delayed(this.now());
  }

  /**
   * When the next pass should run without an event (epoch ms): a delayed repair's time, or,
   * while the datapath is not set up, a second from now (no event may ever come to retry it).
   */
  nextRetry(): number | undefined {
    const now = this.now();
    const delayed = this.backoff.nextRetry(now);
    if (this.datapathFault === undefined) return delayed;
    return delayed ?? now + DATAPATH_RETRY_MS;
  }

  /**
   * Runs one pass, woken by `source` (ip, nft, tc, file, start, periodic...); concurrent calls
   * coalesce into at most one more pass (full if any asked). The outcome lists what every pass
   * of this call repaired.
   */
  reconcile(kind: PassKind = 'full', source: string = kind): Promise<ReconcileOutcome> {
    if (this.running) {
      const q = this.queued ?? { kind, sources: new Set<string>() };
      q.kind = q.kind === 'full' || kind === 'full' ? 'full' : 'light';
      q.sources.add(source);
      this.queued = q;
      return this.running;
    }
    this.running = (async () => {
      try {
        let outcome = await this.pass(kind, source);
        const repaired = [...outcome.repaired];
        while (this.queued) {
          const next = this.queued;
          this.queued = undefined;
          outcome = await this.pass(next.kind, [...next.sources].join('+'));
          repaired.push(...outcome.repaired);
        }
        return { ...outcome, repaired };
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

  /** Sets the datapath up; a failure becomes the fault the status reports, retried with backoff. */
  private async ensureDatapath(source: string): Promise<void> {
    try {
      const underlay = this.state.underlay.device;
      // Whether the underlay had a clsact before podnet's first datapath: then it is not ours.
      if (this.ownership.record.foundClsact === undefined) {
        const found = (await this.effects.hasClsact(underlay)) ? [underlay] : [];
        await this.ownership.update((r) => ({ ...r, foundClsact: found }));
      }
      await this.ownership.update((r) => ({ ...r, datapath: this.datapath.kind }));
      await this.datapath.ensure();
      await this.datapath.setPeers(datapathPeers(this.state));
      if (this.datapathFault && this.firstPassDone) this.log(`datapath ${this.datapath.kind} set up again`);
      this.datapathFault = undefined;
    } catch (err) {
      const message = (err as Error).message;
      if (message !== this.datapathFault) this.log(`datapath ${this.datapath.kind} cannot be set up: ${message}`);
      this.datapathFault = message;
      const line = this.backoff.record(DATAPATH_KEY, this.now(), source);
      if (line) this.log(line);
    }
  }

  private async pass(kind: PassKind, source: string): Promise<ReconcileOutcome> {
    // While the datapath is faulty, every pass tries again (as far as backoff allows): a light
    // pass must not skip what the failed full pass left undone.
    if (kind === 'full' || (this.datapathFault !== undefined && this.backoff.allowed(DATAPATH_KEY, this.now())))
      await this.ensureDatapath(source);
    else await this.datapath.refresh?.();

    const live = await this.effects.readLive();
    await this.noteBridge(live);
    if (live.firewalld && this.datapath.kind === 'ebpf') await this.ensureConntrackBypass();
    const diffs = this.differences(live);
    const now = this.now();
    const repairable = diffs.filter(isRepairable);
    const toFix = repairable.filter((d) => this.backoff.allowed(keyOf(d), now));
    for (const d of diffs) if (!this.seen.has(keyOf(d))) this.log(`drift ${describeDifference(d)}`);

    let remaining = diffs;
    if (toFix.length > 0) {
      await this.execute(toFix, live, source);
      for (const d of toFix) {
        const line = this.backoff.record(keyOf(d), now, source);
        if (line) this.log(line);
      }
      if (this.firstPassDone) {
        this.repairCount += toFix.length;
        this.log(`reconciled (${source}): repaired ${toFix.length} difference(s)`);
      }
      remaining = this.differences(await this.effects.readLive());
      for (const d of remaining)
        if (toFix.some((f) => keyOf(f) === keyOf(d))) this.log(`still differs after repair: ${d.kind} ${d.subject}`);
      // What a repair revealed (pods' veths off a bridge that was just recreated) gets a pass
      // of its own now: no event may come for it before the 30 s check.
      const revealed = remaining.filter(
        (d) => isRepairable(d) && !toFix.some((f) => keyOf(f) === keyOf(d)) && this.backoff.allowed(keyOf(d), now),
      );
      if (revealed.length > 0) {
        this.queued ??= { kind: 'light', sources: new Set() };
        this.queued.sources.add('follow-up');
      }
    }
    const differing = new Set(remaining.map(keyOf));
    for (const key of this.backoff.keys()) {
      if (key === DATAPATH_KEY ? this.datapathFault !== undefined : differing.has(key)) continue;
      const line = this.backoff.held(key, now);
      if (line) this.log(line);
    }
    this.seen = new Set(diffs.map(keyOf));
    this.firstPassDone = true;
    return { repaired: toFix, remaining, problems: await this.problems() };
  }

  /**
   * What the agent acts on and reports as remaining: a foreign CNI config sorting before
   * podnet's is for plan and drift to report; it neither degrades the agent nor is touched.
   */
  private differences(live: LiveHostState): HostDifference[] {
    return diffHost(this.state, live).filter((d) => d.kind !== 'cni-config-shadowed');
  }

  /** A bridge podnet did not create (it was there first) is adopted: teardown keeps it. */
  private async noteBridge(live: LiveHostState): Promise<void> {
    const b = this.state.bridge;
    if (!live.links.some((l) => l.name === b.device)) return;
    await this.ownership.adopted(
      b.device,
      b.address,
      live.addresses.some((a) => a.device === b.device && a.cidr === b.address),
    );
  }

  private async execute(diffs: readonly HostDifference[], live: LiveHostState, source: string): Promise<void> {
    const plan = planFixes(this.state, diffs, live);
    if (diffs.some((d) => d.kind === 'bridge-missing')) await this.ownership.created(this.state.bridge.device);
    if (plan.recreateTunnel) await this.effects.deleteLink(this.state.tunnel.device);
    if (plan.ensureTunnel) await this.ensureDatapath(source);
    if (plan.enableIpForward) {
      await this.ownership.changedSysctl('net.ipv4.ip_forward', '0');
      await this.effects.enableIpForward();
    }
    for (const dev of plan.interfaceForwarding)
      await this.effects.enableInterfaceForwarding(dev).catch((e: Error) => this.log(`forwarding on ${dev}: ${e.message}`));
    for (const argv of plan.firewallInserts) {
      const r = await this.effects.run(argv);
      if (r.code !== 0) this.log(`${argv.join(' ')}: ${r.stderr.trim()}`);
    }
    if (plan.firewalld?.bindSource) {
      await this.ownership.boundFirewalldSource(this.state.clusterCidr);
      await this.callFirewalld(firewalldSourceCall('add', this.state.clusterCidr));
    }
    if (plan.firewalld?.protocolZone) {
      await this.ownership.allowedFirewalldProtocol(plan.firewalld.protocolZone);
      await this.callFirewalld(firewalldProtocolCall('add', plan.firewalld.protocolZone));
    }
    const batch = await this.effects.ipBatch(plan.ipBatch);
    if (batch.code !== 0) this.log(`ip -batch reported: ${batch.stderr.trim()}`);
    const staleOnBridge = diffs
      .filter((d) => d.kind === 'address-stale' && d.subject.endsWith(` dev ${this.state.bridge.device}`))
      .map((d) => d.subject.split(' ')[0]!);
    if (staleOnBridge.length > 0) await this.ownership.removedAddresses(this.state.bridge.device, staleOnBridge);
    for (const c of plan.unmanagedConfigs) {
      await writeFileAtomic(c.path, c.content);
      await reloadManager(c.manager);
    }
    if (plan.writeSubnetEnv) await this.effects.writeSubnetEnv();
    if (plan.writeCniConfig) await this.effects.writeCniConfig();
    if (plan.nftScript) await this.effects.replaceNft(plan.nftScript);
  }

  /**
   * Runs one of firewalld's D-Bus calls (recorded in the ownership record before). A starting
   * firewalld has its rules (the nftables event that woke this pass) in place before it answers
   * on D-Bus: a refusal is tried again every 100 ms for up to FIREWALLD_WAIT_MS.
   */
  private async callFirewalld(argv: readonly string[]): Promise<void> {
    const start = this.now();
    for (;;) {
      const r = await this.effects.run(argv);
      if (r.code === 0) return;
      if (this.now() - start >= FIREWALLD_WAIT_MS) {
        this.log(`${argv.join(' ')}: exit ${r.code}: ${(r.stderr || r.stdout).trim()}`);
        return;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  /**
   * With firewalld running and the ebpf datapath, pods' packets to remote pods go untracked
   * (conntrackBypassScript says why); once made, the table is podnet's by name and teardown
   * deletes it.
   */
  private async ensureConntrackBypass(): Promise<void> {
    const s = this.state;
    const table = conntrackBypassTableName(s.network);
    if ((await this.effects.run(['nft', 'list', 'table', 'ip', table])).code === 0) return;
    const r = await this.effects.run(['nft', '-f', '-'], conntrackBypassScript(s.network, s.clusterCidr, s.podCidr, s.bridge.device));
    if (r.code !== 0) this.log(`nft table ${table}: ${r.stderr.trim()}`);
    else if (this.firstPassDone) this.log(`made nft table ${table} again`);
  }

  private async problems(): Promise<string[]> {
    if (this.datapathFault !== undefined) return [`datapath ${this.datapath.kind} is not set up: ${this.datapathFault}`];
    try {
      return [...((await this.datapath.health?.()) ?? [])].map((p) => `datapath ${this.datapath.kind}: ${p}`);
    } catch (err) {
      return [`datapath ${this.datapath.kind}: health check failed: ${(err as Error).message}`];
    }
  }
}
