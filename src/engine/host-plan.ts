// The plan for one host: plain data computed by pure code from what the host should have
// and what it has. Apply executes it without re-deciding; views render it.
import { createHash } from 'node:crypto';
import {
  agentConfigPath,
  desiredHostState,
  pinnedSpec,
  renderAgentConfig,
  renderAgentUnit,
  unitPath,
  type DesiredHostState,
  type Network,
  type NetworkSpec,
} from '../model';
import { diffHost, type HostDifference } from '../planner/host-diff';
import type { Artifact, ArtifactSet } from './artifacts';
import type { HostReading } from './host-reading';

/** Everything podnet installs on one host, rendered from the model. */
export interface HostTarget {
  readonly node: string;
  readonly address: string;
  readonly state: DesiredHostState;
  readonly configPath: string;
  readonly config: string;
  /** sha256 prefix of the config text: the agent reports the same in its status. */
  readonly configHash: string;
  readonly unitPath: string;
  readonly unit: string;
}

export function configHashOf(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

export function hostTargets(spec: NetworkSpec, network: Network): HostTarget[] {
  const pinned = pinnedSpec(spec, network);
  return network.nodes.map((n) => {
    const config = renderAgentConfig(n.name, pinned);
    return {
      node: n.name,
      address: n.address,
      state: desiredHostState(network, n.name),
      configPath: agentConfigPath(network.name),
      config,
      configHash: configHashOf(config),
      unitPath: unitPath(network.name),
      unit: renderAgentUnit(network.name, n.datapath),
    };
  });
}

export type FileAction = { readonly path: string; readonly action: 'create' | 'update'; readonly what: string };

export interface HostPlan {
  readonly node: string;
  readonly address: string;
  readonly uploads: readonly Artifact[];
  readonly files: readonly FileAction[];
  readonly daemonReload: boolean;
  readonly enable: boolean;
  readonly service: 'start' | 'restart' | 'none';
  /** Network differences the agent will repair once it runs the new config. */
  readonly network: readonly HostDifference[];
}

export function hostPlanHasChanges(plan: HostPlan): boolean {
  return plan.uploads.length > 0 || plan.files.length > 0 || plan.enable || plan.service !== 'none' || plan.network.length > 0;
}

function fileAction(path: string, current: string | undefined, wanted: string, what: string): FileAction[] {
  if (current === wanted) return [];
  return [{ path, action: current === undefined ? 'create' : 'update', what }];
}

export function planHost(target: HostTarget, reading: HostReading, artifacts: ArtifactSet): HostPlan {
  const uploads: Artifact[] = [];
  const runtimeInstalled = reading.runtimeTarget === artifacts.runtime.remotePath;
  if (!runtimeInstalled) uploads.push(artifacts.runtime);
  for (const a of [artifacts.agent, ...artifacts.extras]) if (reading.hashes[a.remotePath] !== a.sha256) uploads.push(a);

  const files = [
    ...fileAction(target.configPath, reading.config, target.config, 'agent config'),
    ...fileAction(target.unitPath, reading.unitFile, target.unit, 'systemd unit'),
  ];
  const unitChanged = files.some((f) => f.path === target.unitPath);
  const active = reading.unit.activeState === 'active';
  const restartNeeded = uploads.length > 0 || files.length > 0;
  return {
    node: target.node,
    address: target.address,
    uploads,
    files,
    daemonReload: unitChanged,
    enable: reading.unit.unitFileState !== 'enabled',
    service: !active ? 'start' : restartNeeded ? 'restart' : 'none',
    network: diffHost(target.state, reading.live),
  };
}
