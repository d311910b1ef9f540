// Every JSON document podnet prints or writes, in one place: each schema id, its wire types and
// the functions that build them from the engine's results. The wire types are written out
// field by field (no spreading of internal types), so an engine type can change without
// changing what scripts and CI read; only an edit here changes a format.
//
// When to bump a schema id (`podnet.dev/<doc>/vN` -> `vN+1`), after terraform's jsonplan
// FormatVersion rule ("any change that requires changes to a consuming parser"):
//   - bump when a field is removed or renamed, changes type or meaning, or an optional field
//     becomes absent where it was always present;
//   - do not bump for a new field, or for a new value of a field documented as open-ended
//     (`kind`, `action` and error `kind` lists grow: consumers must ignore what they do not
//     know);
//   - on a bump, update README.md (section Commands) and the golden files under
//     test/fixtures/views/, and say in the id's comment what changed.
//
// Other documents and their homes, listed here so this is the one index of formats:
//   - `podnet.dev/v1alpha1`: the network manifest synth writes (src/model/manifest.ts,
//     re-exported below as MANIFEST_API_VERSION);
//   - `podnet.dev/agent-status/v1`: the agent's status file on each host, read by apply and
//     drift (src/model/agent-status.ts, its own bump rule there; re-exported below);
//   - `podnet.dev/bench-datapath/v1`: one line per datapath benchmark (bench/datapath/run.ts);
//   - `podnet lab status --json`: the lab's own state, a developer tool's document without an id.
import type { DesiredHostState, HostUnderlay } from '../model';
import type { Artifact } from '../engine/artifacts';
import type { ApplyHostResult, NetworkApply } from '../engine/apply';
import type { DestroyHostResult, NetworkDestroy } from '../engine/destroy';
import type { DriftItem, HostDrift, NetworkDrift } from '../engine/drift';
import type { HostError } from '../engine/host-error';
import type { HostPlan, RuntimeStep } from '../engine/host-plan';
import type { NetworkPlan, OfflinePlan } from '../engine/network-plan';
import type { HostDifference } from '../planner/host-diff';

export { AGENT_STATUS_SCHEMA, MANIFEST_API_VERSION } from '../model';

/** v3: errors are `{ node, error: { kind, message } }`; files name their `content` (config or unit) instead of a label; differences carry `action`. v2: the runtime got its own step. */
export const PLAN_SCHEMA = 'podnet.dev/plan/v3';
/** v1: `plan --offline`, which printed `{ network, hosts }` without a schema before. */
export const OFFLINE_PLAN_SCHEMA = 'podnet.dev/offline-plan/v1';
/** v2: `actions: string[]` became `steps: [{ what, seconds }]`; `error` is `{ kind, message }`. */
export const APPLY_SCHEMA = 'podnet.dev/apply/v2';
/** v2: a host's `error` is `{ kind, message }` (was the message); differences carry `action`. */
export const DRIFT_SCHEMA = 'podnet.dev/drift/v2';
/** v2: a host has `outcome` (destroyed, skipped, failed) and `error` is `{ kind, message }`; `ok` at the top. */
export const DESTROY_SCHEMA = 'podnet.dev/destroy/v2';

/** A host that failed: `kind` is an SshError kind (refused, timeout, auth-failed, host-key-*, ...) or the engine's own. */
export interface HostErrorJson {
  readonly kind: string;
  readonly message: string;
}

export interface DifferenceJson {
  readonly kind: string;
  /** create, update, delete, or report (shown, never touched). */
  readonly action: string;
  readonly subject: string;
  readonly expected?: string;
  readonly actual?: string;
}

export interface ArtifactJson {
  readonly name: string;
  readonly remotePath: string;
}

export type RuntimeStepJson =
  | { readonly action: 'keep'; readonly target: string }
  | { readonly action: 'link-host'; readonly path: string; readonly version: string }
  /** `why`: why not the host's own node (e.g. it has none, or someone other than root could replace it). */
  | { readonly action: 'ship'; readonly name: string; readonly remotePath: string; readonly why: string };

/** The underlay a host's agent uses (model/underlay.ts): each value with where it came from. */
export interface UnderlayJson {
  readonly device: string;
  readonly deviceSource: string;
  readonly mtu: number;
  readonly mtuSource: string;
  readonly tunnelMtu: number;
  readonly tunnelMtuSource: string;
}

export interface HostPlanJson {
  readonly node: string;
  readonly address: string;
  readonly underlay: UnderlayJson;
  /** Each peer: tunnelled or direct, and why (directRouting's decision from the host's routes). */
  readonly peers: ReadonlyArray<{ readonly node: string; readonly address: string; readonly tunnelled: boolean; readonly why: string }>;
  readonly runtime: RuntimeStepJson;
  readonly uploads: readonly ArtifactJson[];
  readonly files: ReadonlyArray<{ readonly path: string; readonly action: 'create' | 'update'; readonly content: 'config' | 'unit' }>;
  readonly daemonReload: boolean;
  readonly enable: boolean;
  readonly service: 'start' | 'restart' | 'none';
  readonly network: readonly DifferenceJson[];
  /**
   * Other podnet networks' leftovers apply removes from the host (their agents do not run; one
   * whose agent runs puts the host in `errors`, kind `other-network`). `network` is absent for
   * an nftables table no network claims. Added to plan/v3 as a new field (no bump).
   */
  readonly otherNetworks: ReadonlyArray<{
    readonly network?: string;
    /** The unit's ActiveState; absent when it has no unit. */
    readonly unitState?: string;
    /** Its own teardown runs (its config is there, and this network left no state of its own); otherwise what carries its name goes. */
    readonly teardown: boolean;
    readonly pieces: readonly string[];
  }>;
  /** Present when the running agent is not what the installed files make (why it restarts). */
  readonly staleAgent?: string;
}

export interface PlanJson {
  readonly schema: typeof PLAN_SCHEMA;
  readonly network: string;
  /** True when apply would change a host that was planned. */
  readonly changes: boolean;
  readonly hosts: readonly HostPlanJson[];
  readonly errors: ReadonlyArray<{ readonly node: string; readonly error: HostErrorJson }>;
}

export interface DesiredHostStateJson {
  readonly network: string;
  readonly node: string;
  readonly datapath: string;
  readonly clusterCidr: string;
  readonly podCidr: string;
  readonly tunnel: { readonly device: string; readonly local: string; readonly mtu: number; readonly address: string };
  readonly underlay: { readonly device: string; readonly address: string; readonly mtu: number };
  readonly bridge: { readonly device: string; readonly address: string };
  readonly peers: ReadonlyArray<{ readonly node: string; readonly address: string; readonly podCidr: string; readonly tunnelled: boolean }>;
  readonly routes: ReadonlyArray<{
    readonly destination: string;
    readonly gateway: string;
    readonly device: string;
    readonly onlink: boolean;
    readonly peer: string;
  }>;
  readonly subnetEnv: { readonly path: string; readonly content: string };
  readonly nftTable: string;
}

export interface OfflinePlanJson {
  readonly schema: typeof OFFLINE_PLAN_SCHEMA;
  readonly network: string;
  readonly hosts: readonly DesiredHostStateJson[];
}

export interface ApplyHostJson {
  readonly node: string;
  readonly ok: boolean;
  readonly changed: boolean;
  /** Seconds are wall time, unrounded. */
  readonly steps: ReadonlyArray<{ readonly what: string; readonly seconds: number }>;
  readonly seconds: number;
  readonly error?: HostErrorJson;
}

export interface ApplyJson {
  readonly schema: typeof APPLY_SCHEMA;
  readonly network: string;
  readonly ok: boolean;
  readonly hosts: readonly ApplyHostJson[];
}

export interface HostDriftJson {
  readonly node: string;
  readonly address: string;
  readonly inSync: boolean;
  readonly differences: readonly DifferenceJson[];
  /** The host could not be read; then inSync is false and differences empty. */
  readonly error?: HostErrorJson;
}

export interface DriftJson {
  readonly schema: typeof DRIFT_SCHEMA;
  readonly network: string;
  readonly inSync: boolean;
  readonly hosts: readonly HostDriftJson[];
}

export interface DestroyHostJson {
  readonly node: string;
  /** False only when outcome is failed. */
  readonly ok: boolean;
  readonly outcome: 'destroyed' | 'skipped' | 'failed';
  /** What was done, for people; for a skipped host, why. */
  readonly actions: readonly string[];
  /** skipped: the revision the host records. */
  readonly heldRevision?: string;
  readonly error?: HostErrorJson;
}

export interface DestroyJson {
  readonly schema: typeof DESTROY_SCHEMA;
  readonly network: string;
  readonly ok: boolean;
  readonly hosts: readonly DestroyHostJson[];
}

function errorJson(e: HostError): HostErrorJson {
  return { kind: e.kind, message: e.message };
}

function differenceJson(d: HostDifference | DriftItem): DifferenceJson {
  return {
    kind: d.kind,
    action: d.action,
    subject: d.subject,
    ...(d.expected !== undefined ? { expected: d.expected } : {}),
    ...(d.actual !== undefined ? { actual: d.actual } : {}),
  };
}

function artifactJson(a: Artifact): ArtifactJson {
  return { name: a.name, remotePath: a.remotePath };
}

function runtimeJson(step: RuntimeStep): RuntimeStepJson {
  switch (step.action) {
    case 'keep':
      return { action: 'keep', target: step.target };
    case 'link-host':
      return { action: 'link-host', path: step.path, version: step.version };
    case 'ship':
      return { action: 'ship', ...artifactJson(step.artifact), why: step.why };
  }
}

function underlayJson(u: HostUnderlay): UnderlayJson {
  return {
    device: u.device,
    deviceSource: u.deviceSource,
    mtu: u.mtu,
    mtuSource: u.mtuSource,
    tunnelMtu: u.tunnelMtu,
    tunnelMtuSource: u.tunnelMtuSource,
  };
}

export function hostPlanJson(plan: HostPlan): HostPlanJson {
  return {
    node: plan.node,
    address: plan.address,
    underlay: underlayJson(plan.underlay),
    peers: plan.peers.map((x) => ({ node: x.node, address: x.address, tunnelled: x.tunnelled, why: x.why })),
    runtime: runtimeJson(plan.runtime),
    uploads: plan.uploads.map(artifactJson),
    files: plan.files.map((f) => ({ path: f.path, action: f.action, content: f.content })),
    daemonReload: plan.daemonReload,
    enable: plan.enable,
    service: plan.service,
    network: plan.network.map(differenceJson),
    otherNetworks: plan.otherNetworks.map((o) => ({
      ...(o.network !== undefined ? { network: o.network } : {}),
      ...(o.unitState !== undefined ? { unitState: o.unitState } : {}),
      teardown: o.teardown,
      pieces: [...o.pieces],
    })),
    ...(plan.staleAgent ? { staleAgent: plan.staleAgent } : {}),
  };
}

export function planJson(plan: NetworkPlan): PlanJson {
  return {
    schema: PLAN_SCHEMA,
    network: plan.network,
    changes: plan.hasChanges,
    hosts: plan.hosts.map(hostPlanJson),
    errors: plan.errors.map((e) => ({ node: e.node, error: errorJson(e.error) })),
  };
}

function desiredHostStateJson(s: DesiredHostState): DesiredHostStateJson {
  return {
    network: s.network,
    node: s.node,
    datapath: s.datapath,
    clusterCidr: s.clusterCidr,
    podCidr: s.podCidr,
    tunnel: { device: s.tunnel.device, local: s.tunnel.local, mtu: s.tunnel.mtu, address: s.tunnel.address },
    underlay: { device: s.underlay.device, address: s.underlay.address, mtu: s.underlay.mtu },
    bridge: { device: s.bridge.device, address: s.bridge.address },
    peers: s.peers.map((p) => ({ node: p.node, address: p.address, podCidr: p.podCidr, tunnelled: p.tunnelled })),
    routes: s.routes.map((r) => ({ destination: r.destination, gateway: r.gateway, device: r.device, onlink: r.onlink, peer: r.peer })),
    subnetEnv: { path: s.subnetEnv.path, content: s.subnetEnv.content },
    nftTable: s.nftTable,
  };
}

export function offlinePlanJson(plan: OfflinePlan): OfflinePlanJson {
  return { schema: OFFLINE_PLAN_SCHEMA, network: plan.network.name, hosts: plan.hosts.map((h) => desiredHostStateJson(h.state)) };
}

function applyHostJson(r: ApplyHostResult): ApplyHostJson {
  return {
    node: r.node,
    ok: r.ok,
    changed: r.changed,
    steps: r.steps.map((s) => ({ what: s.what, seconds: s.seconds })),
    seconds: r.seconds,
    ...(r.ok ? {} : { error: errorJson(r.error) }),
  };
}

export function applyJson(apply: NetworkApply): ApplyJson {
  return { schema: APPLY_SCHEMA, network: apply.network, ok: apply.ok, hosts: apply.hosts.map(applyHostJson) };
}

function hostDriftJson(h: HostDrift): HostDriftJson {
  return {
    node: h.node,
    address: h.address,
    inSync: h.inSync,
    differences: h.differences.map(differenceJson),
    ...(h.error ? { error: errorJson(h.error) } : {}),
  };
}

export function driftJson(drift: NetworkDrift): DriftJson {
  return { schema: DRIFT_SCHEMA, network: drift.network, inSync: drift.inSync, hosts: drift.hosts.map(hostDriftJson) };
}

/** The words a skipped host gets, in JSON `actions` and in the human view alike. */
export function skippedText(heldRevision: string, wantedRevision: string): string {
  return `skipped: host holds revision ${heldRevision}, not ${wantedRevision}`;
}

function destroyHostJson(r: DestroyHostResult): DestroyHostJson {
  switch (r.outcome) {
    case 'destroyed':
      return { node: r.node, ok: true, outcome: r.outcome, actions: [...r.steps] };
    case 'skipped':
      return {
        node: r.node,
        ok: true,
        outcome: r.outcome,
        actions: [skippedText(r.heldRevision, r.wantedRevision)],
        heldRevision: r.heldRevision,
      };
    case 'failed':
      return { node: r.node, ok: false, outcome: r.outcome, actions: [], error: errorJson(r.error) };
  }
}

export function destroyJson(destroy: NetworkDestroy): DestroyJson {
  return { schema: DESTROY_SCHEMA, network: destroy.network, ok: destroy.ok, hosts: destroy.hosts.map(destroyHostJson) };
}

/** How every document is printed: two-space indent, one trailing newline. */
export function printJson(doc: object): string {
  return JSON.stringify(doc, null, 2) + '\n';
}
