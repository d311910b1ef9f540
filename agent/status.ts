// The agent's status, written atomically to /run/podnet/<network>.status.json after every
// reconcile and every few seconds; `podnet-agent status` and the engine read it.
import { writeFileAtomic } from './host/atomic-file';
import type { DatapathCounters, DatapathKind } from './datapaths/datapath';
import type { HostDifference } from '../src/planner/host-diff';

export const STATUS_SCHEMA = 'podnet.dev/agent-status/v1';

export interface AgentStatus {
  readonly schema: typeof STATUS_SCHEMA;
  readonly version: string;
  readonly build: string;
  readonly network: string;
  readonly node: string;
  readonly pid: number;
  readonly configHash: string;
  /** `failed` when no datapath could start (reason in `error`). */
  readonly state: 'starting' | 'converged' | 'degraded' | 'failed';
  readonly datapath?: DatapathKind;
  /** Why datapaths ahead of the chosen one were passed over. */
  readonly passedOver: Readonly<Partial<Record<DatapathKind, string>>>;
  readonly peers: ReadonlyArray<{ readonly node: string; readonly address: string; readonly podCidr: string; readonly tunnelled: boolean }>;
  readonly counters?: DatapathCounters;
  readonly repairs: number;
  readonly lastReconcile?: string;
  readonly remaining: readonly HostDifference[];
  readonly error?: string;
}

export function writeStatus(path: string, status: AgentStatus): Promise<void> {
  return writeFileAtomic(path, JSON.stringify(status, null, 2) + '\n');
}
