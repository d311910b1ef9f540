// The agent's status file (host-layout.ts's statusPath): the one channel through which
// the engine learns what runs on a host. The agent writes it with serializeAgentStatus; apply's
// converge wait, drift and `podnet-agent status` read it with parseAgentStatus; the config hash
// both sides compare is configHashOf. All of it lives here so that neither side can change the
// format alone.
//
// Schema rule: AGENT_STATUS_SCHEMA changes (v1 -> v2) when a field is removed or changes
// meaning; adding an optional field keeps it. A reader refuses a schema it does not know, so
// an engine never acts on a status it cannot read right (it waits, then reports the reason).
import { createHash } from 'node:crypto';
import type { DropReason } from './drop-reasons';
import type { HostUnderlay } from './underlay';

export const AGENT_STATUS_SCHEMA = 'podnet.dev/agent-status/v1';

/** The datapaths an agent can run (the model's `datapath` choice minus `auto`). */
export type DatapathKind = 'kernel' | 'ebpf' | 'userspace';

/** Packets and bytes a datapath carried to and from one peer since it started. */
export interface PeerCounters {
  readonly node: string;
  readonly txPackets: number;
  readonly txBytes: number;
  readonly rxPackets: number;
  readonly rxBytes: number;
  /**
   * The outer path MTU towards this peer (bytes, outer header included) that an ICMP
   * "fragmentation needed" taught the datapath, while it is below the underlay MTU and younger
   * than the kernel's 10 minutes (ip_rt_mtu_expires); absent when none is known.
   */
  readonly pathMtu?: number;
  /**
   * ICMP "fragmentation needed" messages about this peer's tunnel packets that the datapath
   * relayed to the inner sender as an inner ICMP (next-hop MTU = path MTU - 20); absent where the
   * datapath does not relay (it then answers the sender's next too-big packet: drop reason fragNeeded).
   */
  readonly fragNeededRelayed?: number;
}

export interface DatapathCounters {
  readonly peers: readonly PeerCounters[];
  /** Packets the datapath did not carry, every reason but notIpv4 (droppedTotal in drop-reasons.ts). */
  readonly dropped: number;
  /** `dropped` by reason, in the names all datapaths share (drop-reasons.ts), where the datapath tells them apart. */
  readonly drops?: Readonly<Partial<Record<DropReason, number>>>;
}

/** `starting` until the first pass; `failed` when no datapath could start (reason in `error`). */
export type AgentState = 'starting' | 'converged' | 'degraded' | 'failed';
const AGENT_STATES: readonly AgentState[] = ['starting', 'converged', 'degraded', 'failed'];

export interface StatusPeer {
  readonly node: string;
  readonly address: string;
  readonly podCidr: string;
  /** False when directRouting sends this peer's pods straight over the underlay. */
  readonly tunnelled: boolean;
}

/** A difference the agent could not repair (the planner's HostDifference, as written). */
export interface StatusDifference {
  readonly kind: string;
  readonly subject: string;
  readonly expected?: string;
  readonly actual?: string;
}

/** A repair the agent delays because something keeps undoing it (agent/reconcile/backoff.ts). */
export interface StatusBackoff {
  /** What keeps being undone: a difference's `kind subject`, or `datapath`. */
  readonly key: string;
  /** Repairs within the last `windowS` seconds. */
  readonly repairs: number;
  readonly windowS: number;
  /** ISO 8601 time of the next repair. */
  readonly retryAt: string;
  /** The events that woke the repairing passes (ip, nft, tc, file, periodic, ...). */
  readonly sources: readonly string[];
}

export interface AgentStatus {
  readonly schema: typeof AGENT_STATUS_SCHEMA;
  readonly state: AgentState;
  /** {@link configHashOf} the config file this process loaded. */
  readonly configHash: string;
  readonly pid: number;
  /** package.json version and build hash of the agent bundle. */
  readonly version: string;
  readonly build: string;
  readonly network: string;
  readonly node: string;
  readonly datapath?: DatapathKind;
  /** The underlay this agent found at start and carries the tunnel on (model/underlay.ts). */
  readonly underlay?: HostUnderlay;
  /** Why datapaths ahead of the chosen one were passed over. */
  readonly passedOver: Readonly<Partial<Record<DatapathKind, string>>>;
  readonly peers: readonly StatusPeer[];
  readonly counters?: DatapathCounters;
  readonly repairs: number;
  /** ISO 8601 time of the last finished pass. */
  readonly lastReconcile?: string;
  readonly remaining: readonly StatusDifference[];
  /**
   * Why the state is `degraded`, one line each: differences left, the datapath not attached or
   * not counting, repairs delayed by backoff. Absent when converged.
   */
  readonly degradedReasons?: readonly string[];
  /** Repairs being delayed because something keeps undoing them; absent when none. */
  readonly backoff?: readonly StatusBackoff[];
  readonly error?: string;
}

/** The hash the engine expects and the agent reports for a config text: sha256, first 16 hex digits. */
export function configHashOf(configText: string): string {
  return createHash('sha256').update(configText).digest('hex').slice(0, 16);
}

/**
 * The file's text: JSON, two-space indent, the fields apply's converge wait matches (state,
 * configHash, pid) first and at the top level, each followed by more fields; see
 * {@link statusFieldText}.
 */
export function serializeAgentStatus(status: AgentStatus): string {
  const { schema, state, configHash, pid, ...rest } = status;
  return JSON.stringify({ schema, state, configHash, pid, ...rest }, null, 2) + '\n';
}

/** Fields a shell loop on the host can match in the file's text without parsing JSON. */
export type MatchableStatusField = 'state' | 'configHash' | 'pid';

/**
 * The exact text {@link serializeAgentStatus} writes for a top-level field: a newline, two
 * spaces, `"key": value,`. The indent tells it from nested keys, the comma ends the value
 * (pid 12 never matches pid 123).
 */
export function statusFieldText(key: MatchableStatusField, value: string | number): string {
  return `\n  ${JSON.stringify(key)}: ${JSON.stringify(value)},`;
}

export type ParsedAgentStatus = { readonly ok: true; readonly status: AgentStatus } | { readonly ok: false; readonly reason: string };

/** Reads a status file's text; `ok: false` says why it cannot be trusted (not JSON, another schema, a field missing). */
export function parseAgentStatus(text: string): ParsedAgentStatus {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'not a JSON object' };
  const v = value as Record<string, unknown>;
  if (v.schema !== AGENT_STATUS_SCHEMA) return { ok: false, reason: `schema ${JSON.stringify(v.schema)}, expected ${AGENT_STATUS_SCHEMA}` };
  for (const key of ['configHash', 'version', 'build', 'network', 'node'] as const) {
    if (typeof v[key] !== 'string') return { ok: false, reason: `${key} is not a string` };
  }
  if (!Number.isInteger(v.pid)) return { ok: false, reason: 'pid is not an integer' };
  if (!AGENT_STATES.includes(v.state as AgentState)) return { ok: false, reason: `unknown state ${JSON.stringify(v.state)}` };
  if (!Array.isArray(v.peers) || !Array.isArray(v.remaining)) return { ok: false, reason: 'peers or remaining is not a list' };
  return { ok: true, status: value as AgentStatus };
}

/** One line saying why a status is not converged (its state, error and reasons), for apply and drift. */
export function statusSummary(status: AgentStatus): string {
  const reasons = [...(status.error ? [status.error] : []), ...(status.degradedReasons ?? [])];
  return reasons.length ? `${status.state}: ${reasons.join('; ')}` : status.state;
}

/**
 * Whether `status` shows the agent running `configHash`, converged, in a process other than
 * `notPid` (the one a restart replaced).
 */
export function isConvergedOn(status: AgentStatus, configHash: string, notPid?: number): boolean {
  return status.state === 'converged' && status.configHash === configHash && status.pid !== notPid;
}
