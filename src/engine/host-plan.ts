// The plan for one host: plain data computed by pure code from what the host should have
// and what it has. Apply executes it without re-deciding; views render it.
import {
  agentConfigPath,
  parseAgentStatus,
  agentNetworkSpec,
  configHashOf,
  describeUnderlay,
  underlayChanged,
  desiredHostState,
  discoverUnderlay,
  findNode,
  renderAgentConfig,
  renderAgentUnit,
  unitPath,
  type AgentRuntimeChoice,
  type DesiredHostState,
  type DesiredPeer,
  type HostUnderlay,
  type Network,
  type NetworkSpec,
} from '../model';
import { diffHost, type HostDifference } from '../planner/host-diff';
import { otherNetworks, runningOthersMessage, type OtherNetwork } from '../planner/stale-state';
import type { Artifact, ArtifactSet } from './artifacts';
import type { LiveHostState } from '../host/live-state';
import type { HostReading } from './host-reading';
import { chooseRuntime, runtimeTarget, type RuntimeChoice } from './runtime-choice';

/** Everything podnet installs on one host, rendered from the model. */
export interface HostTarget {
  readonly node: string;
  readonly address: string;
  /** The resolved network this target was rendered from (hostStateOn finds the node's underlay in it). */
  readonly network: Network;
  /** Desired state from the declarations alone (assumedUnderlay); hostStateOn gives the one for the host as read. */
  readonly state: DesiredHostState;
  readonly configPath: string;
  readonly config: string;
  /** sha256 prefix of the config text: the agent reports the same in its status. */
  readonly configHash: string;
  readonly unitPath: string;
  readonly unit: string;
  readonly runtimePolicy: AgentRuntimeChoice;
}

export function hostTargets(spec: NetworkSpec, network: Network): HostTarget[] {
  // Without agentRuntime, a policy change restarts an agent only when its runtime really changes.
  const agentSpec = agentNetworkSpec(spec, network);
  return network.nodes.map((n) => {
    const config = renderAgentConfig(n.name, agentSpec);
    return {
      node: n.name,
      address: n.address,
      network,
      state: desiredHostState(network, n.name),
      configPath: agentConfigPath(network.name),
      config,
      configHash: configHashOf(config),
      unitPath: unitPath(network.name),
      unit: renderAgentUnit(network.name, n.datapath, network.cniConfDir),
      runtimePolicy: network.agentRuntime,
    };
  });
}

/**
 * The host's desired state with its underlay found in what the host shows, as its agent will
 * find it. Throws UnderlayError (naming the host, what exists and what to set) when the host
 * cannot carry the tunnel as declared.
 */
export function hostStateOn(target: HostTarget, live: LiveHostState): DesiredHostState {
  return desiredHostState(
    target.network,
    target.node,
    discoverUnderlay(target.network, findNode(target.network, target.node), live),
    live.routes,
  );
}

/** A file podnet renders for the host, named by what it holds so apply never compares paths. */
export type FileContent = 'config' | 'unit';

export type FileAction = { readonly path: string; readonly action: 'create' | 'update'; readonly content: FileContent };

/** What happens to the host's runtime symlink (`/usr/local/lib/podnet/node`). */
export type RuntimeStep =
  | { readonly action: 'keep'; readonly target: string }
  | { readonly action: 'link-host'; readonly path: string; readonly version: string }
  /** `why`: why not the host's own `node` (RuntimeChoice's). */
  | { readonly action: 'ship'; readonly artifact: Artifact; readonly why: string };

export interface HostPlan {
  readonly node: string;
  readonly address: string;
  /** The interface and MTUs the agent will use, and where each came from (declared or detected). */
  readonly underlay: HostUnderlay;
  /** Each peer: tunnelled or direct (directRouting), and why. */
  readonly peers: readonly DesiredPeer[];
  readonly runtime: RuntimeStep;
  /** The agent bundle and its helpers that differ from the host's copies. */
  readonly uploads: readonly Artifact[];
  readonly files: readonly FileAction[];
  /**
   * Only when systemd holds a definition of the unit that the new file replaces: one it never
   * found is loaded from the new file on start (systemd >= 246; older ones get a fallback
   * reload), and each reload costs a host ~0.15 CPU-s.
   */
  readonly daemonReload: boolean;
  readonly enable: boolean;
  readonly service: 'start' | 'restart' | 'none';
  /** Network differences the agent will repair once it runs the new config. */
  readonly network: readonly HostDifference[];
  /**
   * Other podnet networks' leftovers (their agents do not run: a rename's old name, say) that
   * apply removes before the agent starts; one whose agent runs makes planHost refuse the host.
   */
  readonly otherNetworks: readonly OtherNetwork[];
  /**
   * Why the running agent must restart though every file on disk is as planned: it runs another
   * config or build than those files (an apply stopped between writing them and the restart).
   */
  readonly staleAgent?: string;
}

export function hostPlanHasChanges(plan: HostPlan): boolean {
  return (
    plan.runtime.action !== 'keep' ||
    plan.uploads.length > 0 ||
    plan.files.length > 0 ||
    plan.enable ||
    plan.service !== 'none' ||
    plan.network.length > 0 ||
    plan.otherNetworks.length > 0
  );
}

function fileAction(path: string, current: string | undefined, wanted: string, content: FileContent): FileAction[] {
  if (current === wanted) return [];
  return [{ path, action: current === undefined ? 'create' : 'update', content }];
}

/** The text a file of the plan gets: the target's rendered config or unit. */
export function fileText(target: HostTarget, content: FileContent): string {
  return content === 'unit' ? target.unit : target.config;
}

export function runtimeStep(choice: RuntimeChoice, installed: string | undefined): RuntimeStep {
  const target = runtimeTarget(choice);
  if (installed === target) return { action: 'keep', target };
  return choice.kind === 'host'
    ? { action: 'link-host', path: choice.path, version: choice.version }
    : { action: 'ship', artifact: choice.artifact, why: choice.why };
}

/**
 * Why the agent that runs is not the one the installed files make (its status names the config
 * hash it loaded and its build), or carries the tunnel on an underlay the host no longer has
 * (`underlay`: what the host shows now; the agent discovers it only at start), or undefined
 * when none of these holds, or nothing runs, or its status cannot be read. Files alone cannot
 * tell: an apply cut after writing them and before the restart leaves files that match every
 * plan while the old agent keeps running.
 */
export function staleAgent(target: HostTarget, reading: HostReading, agentBuild: string, underlay: HostUnderlay): string | undefined {
  if (reading.unit.activeState !== 'active' || reading.status === undefined) return undefined;
  const parsed = parseAgentStatus(reading.status);
  if (!parsed.ok) return undefined;
  const s = parsed.status;
  if (s.configHash !== target.configHash)
    return `the running agent loaded config ${s.configHash}, the installed one is ${target.configHash}`;
  if (s.build !== agentBuild) return `the running agent is build ${s.build}, the installed one is ${agentBuild}`;
  if (s.underlay && underlayChanged(s.underlay, underlay))
    return `the running agent uses ${describeUnderlay(s.underlay)}, the host now has ${describeUnderlay(underlay)}`;
  return undefined;
}

/** The host runs another podnet network's agent: the message names it and what to do. */
export class OtherNetworkRunningError extends Error {
  override readonly name = 'OtherNetworkRunningError';
}

/** The other networks on the host as read; throws OtherNetworkRunningError when one's agent runs. */
export function otherNetworksOn(target: HostTarget, reading: HostReading): OtherNetwork[] {
  const others = otherNetworks(target.state.network, reading.live.podnetTraces, reading.live.owned !== undefined);
  const running = others.filter((o) => o.running);
  if (running.length > 0) throw new OtherNetworkRunningError(runningOthersMessage(target.state.network, running));
  return others;
}

/**
 * Throws RuntimeUnavailableError when the network asks for the host's Node and it has none
 * usable, UnderlayError when the host cannot carry the tunnel as declared,
 * OtherNetworkRunningError when another podnet network's agent runs there.
 */
export function planHost(target: HostTarget, reading: HostReading, artifacts: ArtifactSet): HostPlan {
  const others = otherNetworksOn(target, reading);
  const state = hostStateOn(target, reading.live);
  const runtime = runtimeStep(chooseRuntime(target.runtimePolicy, reading.hostNode, artifacts.runtime), reading.runtimeTarget);
  const uploads: Artifact[] = [];
  for (const a of [artifacts.agent, ...artifacts.extras]) if (reading.hashes[a.remotePath] !== a.sha256) uploads.push(a);

  const files = [
    ...fileAction(target.configPath, reading.config, target.config, 'config'),
    ...fileAction(target.unitPath, reading.unitFile, target.unit, 'unit'),
  ];
  const unitChanged = files.some((f) => f.content === 'unit');
  const active = reading.unit.activeState === 'active';
  const stale = staleAgent(target, reading, artifacts.agentBuild, state.underlay);
  const restartNeeded = runtime.action !== 'keep' || uploads.length > 0 || files.length > 0 || stale !== undefined;
  return {
    node: target.node,
    address: target.address,
    underlay: state.underlay,
    peers: state.peers,
    runtime,
    uploads,
    files,
    daemonReload: unitChanged && reading.unit.loadState !== 'not-found',
    enable: reading.unit.unitFileState !== 'enabled',
    service: !active ? 'start' : restartNeeded ? 'restart' : 'none',
    network: diffHost(state, reading.live),
    otherNetworks: others,
    ...(active && stale ? { staleAgent: stale } : {}),
  };
}
