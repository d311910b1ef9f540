// `datapath: auto` in one place: the first of kernel, ebpf, userspace whose probe passes.
// An explicit choice is honoured or fails with its probe's reason; nothing falls back silently.
import type { DatapathChoice } from '../../src/model';
import { describeProbe, type Datapath, type DatapathFactory, type DatapathHost, type DatapathKind, type ProbeResult } from './datapath';

type NotChosen = Exclude<ProbeResult, { outcome: 'supported' }>;

export interface DatapathSelection {
  readonly datapath: Datapath;
  /** Why each datapath tried before the chosen one was passed over: "not supported: ..." or "probe failed: ...". */
  readonly passedOver: Readonly<Partial<Record<DatapathKind, string>>>;
  /** The same, as probe outcomes. */
  readonly probes: Readonly<Partial<Record<DatapathKind, NotChosen>>>;
}

export class NoDatapathError extends Error {
  override readonly name = 'NoDatapathError';
  /** Each datapath's reason in words ("not supported: ..." / "probe failed: ..."). */
  readonly reasons: Readonly<Partial<Record<DatapathKind, string>>>;
  constructor(readonly probes: Readonly<Partial<Record<DatapathKind, NotChosen>>>) {
    const reasons = Object.fromEntries(Object.entries(probes).map(([k, p]) => [k, describeProbe(p)]));
    super(
      `no datapath can run here: ${Object.entries(reasons)
        .map(([k, r]) => `${k}: ${r}`)
        .join('; ')}`,
    );
    this.reasons = reasons;
  }
}

/**
 * Probes the candidates in order and creates the first supported one, bound to `host`. A probe
 * that failed (could not tell) is passed over like an unsupported one, but reported as such.
 * Throws NoDatapathError with every outcome when none is supported.
 */
export async function selectDatapath(
  choice: DatapathChoice,
  host: DatapathHost,
  factories: readonly DatapathFactory[],
  log: (line: string) => void,
): Promise<DatapathSelection> {
  const candidates = choice === 'auto' ? factories : factories.filter((f) => f.kind === choice);
  const probes: Partial<Record<DatapathKind, NotChosen>> = {};
  if (candidates.length === 0) probes[choice as DatapathKind] = { outcome: 'unsupported', reason: 'not built into this agent' };
  for (const factory of candidates) {
    const probe = await factory.probe(host).catch((e: Error): ProbeResult => ({ outcome: 'failed', reason: e.message }));
    if (probe.outcome === 'supported') {
      const passedOver = Object.fromEntries(Object.entries(probes).map(([k, p]) => [k, describeProbe(p)]));
      return { datapath: factory.create(host, log), passedOver, probes };
    }
    probes[factory.kind] = probe;
  }
  throw new NoDatapathError(probes);
}
