// Drift: live state vs the declared model, per host, read-only. The network part is the
// same diff the agent repairs from; the agent part checks the unit, config and version.
import {
  describeUnderlay,
  desiredHostState,
  parseAgentConfig,
  parseAgentStatus,
  RUNTIME_PATH,
  UnderlayError,
  underlayChanged,
  statusSummary,
  type AgentStatus,
  type DesiredHostState,
  type NetworkNode,
} from '../model';
import { diffHost, type ChangeAction, type DifferenceKind } from '../planner/host-diff';
import { otherNetworks } from '../planner/stale-state';
import type { ArtifactSet } from './artifacts';
import type { HostReading } from './host-reading';
import { hostStateOn, runtimeStep, type HostTarget } from './host-plan';
import { chooseRuntime, RuntimeUnavailableError } from './runtime-choice';
import type { HostError } from './host-error';
import type { EngineSession, NetworkSnapshot } from './session';

export type AgentDifferenceKind =
  | 'agent-not-installed'
  | 'agent-wrong-version'
  | 'agent-not-enabled'
  | 'agent-not-running'
  | 'agent-degraded'
  /** The running agent loaded another config or is another build than the installed files. */
  | 'agent-stale'
  | 'config-mismatch'
  | 'unit-mismatch'
  | 'runtime-mismatch'
  | 'runtime-unavailable'
  | 'underlay'
  | 'underlay-changed'
  /** Another podnet network's leftovers, its agent not running: apply removes them. */
  | 'other-network'
  /** Another podnet network's agent runs here: apply refuses the host until it is gone. */
  | 'other-network-running';

/** Is the runtime link where agentRuntime and the host's Node say it should be? */
function runtimeDrift(target: HostTarget, reading: HostReading, artifacts: ArtifactSet): DriftItem[] {
  try {
    const step = runtimeStep(chooseRuntime(target.runtimePolicy, reading.hostNode, artifacts.runtime), reading.runtimeTarget);
    if (step.action === 'keep') return [];
    const expected = step.action === 'link-host' ? step.path : step.artifact.remotePath;
    return [{ kind: 'runtime-mismatch', action: 'update', subject: RUNTIME_PATH, expected, actual: reading.runtimeTarget ?? 'missing' }];
  } catch (err) {
    if (!(err instanceof RuntimeUnavailableError)) throw err;
    return [{ kind: 'runtime-unavailable', action: 'report', subject: RUNTIME_PATH, actual: err.message }];
  }
}

/**
 * The state to diff against, found on the host as the agent finds it, and what is wrong with
 * the underlay: one that no longer carries the tunnel as declared (`underlay`), or one the
 * running agent is not using any more (`underlay-changed`: the node's address moved, or the
 * interface's MTU changed; apply restarts the agent, which picks the new one up).
 */
function underlayDrift(
  target: HostTarget,
  reading: HostReading,
  status: AgentStatus | undefined,
): { state: DesiredHostState; problems: DriftItem[] } {
  const used = status?.underlay;
  let state: DesiredHostState;
  try {
    state = hostStateOn(target, reading.live);
  } catch (err) {
    if (!(err instanceof UnderlayError)) throw err;
    return {
      state: used ? desiredHostState(target.network, target.node, used) : target.state,
      problems: [{ kind: 'underlay', action: 'report', subject: used?.device ?? target.state.underlay.device, actual: err.message }],
    };
  }
  const changed = used && underlayChanged(used, state.underlay);
  return {
    state,
    problems: changed
      ? [
          {
            kind: 'underlay-changed',
            action: 'update',
            subject: used.device,
            expected: describeUnderlay(state.underlay),
            actual: `agent uses ${describeUnderlay(used)}`,
          },
        ]
      : [],
  };
}

export interface DriftItem {
  readonly kind: DifferenceKind | AgentDifferenceKind;
  /** What apply (or the agent) does about it; `report`: nothing, it is shown only. */
  readonly action: ChangeAction;
  readonly subject: string;
  readonly expected?: string;
  readonly actual?: string;
}

export interface HostDrift {
  readonly node: string;
  readonly address: string;
  readonly inSync: boolean;
  readonly differences: readonly DriftItem[];
  /** Set when the host could not be read; then inSync is false and differences empty. */
  readonly error?: HostError;
}

/** `podnet drift` for a whole network: read-only. */
export interface NetworkDrift {
  readonly network: string;
  /** True when every host was read and none differs. */
  readonly inSync: boolean;
  /** Every host asked for, in that order. */
  readonly hosts: readonly HostDrift[];
}

export function hostDrift(target: HostTarget, reading: HostReading, artifacts: ArtifactSet): HostDrift {
  const items: DriftItem[] = [];
  const agentHash = reading.hashes[artifacts.agent.remotePath];
  if (agentHash === undefined) items.push({ kind: 'agent-not-installed', action: 'create', subject: artifacts.agent.remotePath });
  else if (agentHash !== artifacts.agent.sha256)
    items.push({
      kind: 'agent-wrong-version',
      action: 'update',
      subject: artifacts.agent.remotePath,
      expected: artifacts.agent.sha256.slice(0, 16),
      actual: agentHash.slice(0, 16),
    });
  // The agent's native helpers and worker are part of its version too.
  for (const extra of artifacts.extras) {
    const have = reading.hashes[extra.remotePath];
    if (agentHash !== undefined && have !== extra.sha256)
      items.push({
        kind: 'agent-wrong-version',
        action: have === undefined ? 'create' : 'update',
        subject: extra.remotePath,
        expected: extra.sha256.slice(0, 16),
        actual: have?.slice(0, 16) ?? 'missing',
      });
  }
  items.push(...runtimeDrift(target, reading, artifacts));
  if (reading.unitFile !== target.unit)
    items.push({
      kind: 'unit-mismatch',
      action: reading.unitFile === undefined ? 'create' : 'update',
      subject: target.unitPath,
      actual: reading.unitFile === undefined ? 'missing' : 'different',
    });
  if (reading.config !== target.config) {
    let actual = reading.config === undefined ? 'missing' : 'different';
    try {
      if (reading.config) actual = `different (node ${parseAgentConfig(reading.config).node})`;
    } catch {
      actual = 'unreadable';
    }
    items.push({
      kind: 'config-mismatch',
      action: reading.config === undefined ? 'create' : 'update',
      subject: target.configPath,
      expected: target.configHash,
      actual,
    });
  }
  if (reading.unit.unitFileState !== 'enabled')
    items.push({
      kind: 'agent-not-enabled',
      action: 'update',
      subject: target.unitPath.split('/').pop()!,
      expected: 'enabled',
      actual: reading.unit.unitFileState || 'absent',
    });
  if (reading.unit.activeState !== 'active')
    items.push({
      kind: 'agent-not-running',
      action: 'update',
      subject: target.unitPath.split('/').pop()!,
      expected: 'active',
      actual: reading.unit.activeState,
    });
  let status: AgentStatus | undefined;
  if (reading.unit.activeState === 'active' && reading.status) {
    const parsed = parseAgentStatus(reading.status);
    if (!parsed.ok)
      items.push({ kind: 'agent-degraded', action: 'report', subject: 'agent status', actual: `unreadable (${parsed.reason})` });
    else {
      status = parsed.status;
      if (parsed.status.state !== 'converged')
        items.push({
          kind: 'agent-degraded',
          action: 'report',
          subject: 'agent status',
          expected: 'converged',
          actual: statusSummary(parsed.status),
        });
      // Only when the files are right: a config or bundle to replace is reported above already.
      const installedRight = reading.config === target.config && agentHash === artifacts.agent.sha256;
      if (installedRight && parsed.status.configHash !== target.configHash)
        items.push({
          kind: 'agent-stale',
          action: 'update',
          subject: 'running agent config',
          expected: target.configHash,
          actual: parsed.status.configHash,
        });
      else if (installedRight && parsed.status.build !== artifacts.agentBuild)
        items.push({
          kind: 'agent-stale',
          action: 'update',
          subject: 'running agent build',
          expected: artifacts.agentBuild,
          actual: parsed.status.build,
        });
    }
  }
  for (const o of otherNetworks(target.state.network, reading.live.podnetTraces, reading.live.owned !== undefined))
    items.push({
      kind: o.running ? 'other-network-running' : 'other-network',
      action: o.running ? 'report' : 'delete',
      subject: o.network ?? o.nftTables.join(' '),
      expected: `only network ${target.state.network} on this host`,
      actual: o.running ? `its agent runs (${o.pieces.join(', ')}): destroy it here first` : o.pieces.join(', '),
    });
  const { state, problems } = underlayDrift(target, reading, status);
  items.push(...problems, ...diffHost(state, reading.live));
  return { node: target.node, address: target.address, inSync: items.length === 0, differences: items };
}

/** Drift of hosts already read. Pure. */
export function driftFromSnapshot(snapshot: NetworkSnapshot, artifacts: ArtifactSet): NetworkDrift {
  const hosts = snapshot.hosts.map(({ read, target }): HostDrift =>
    read.ok
      ? hostDrift(target, read.reading, artifacts)
      : { node: read.node, address: target.address, inSync: false, differences: [], error: read.error },
  );
  return { network: snapshot.network.name, inSync: hosts.every((h) => h.inSync), hosts };
}

/** Reads `nodes` over SSH (read-only) and compares each with the manifest. */
export async function driftNetwork(session: EngineSession, nodes: readonly NetworkNode[], artifacts: ArtifactSet): Promise<NetworkDrift> {
  return driftFromSnapshot(await session.readNetwork(nodes), artifacts);
}
