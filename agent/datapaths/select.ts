// `datapath: auto` in one place: the first of kernel, ebpf, userspace whose probe passes.
// An explicit choice is honoured or fails with its probe's reason; nothing falls back silently.
import type { DatapathChoice } from '../../src/model';
import type { Datapath, DatapathFactory, DatapathHost, DatapathKind } from './datapath';

export interface DatapathSelection {
  readonly datapath: Datapath;
  /** Why each datapath tried before the chosen one was passed over. */
  readonly passedOver: Readonly<Partial<Record<DatapathKind, string>>>;
}

export class NoDatapathError extends Error {
  override readonly name = 'NoDatapathError';
  constructor(readonly reasons: Readonly<Partial<Record<DatapathKind, string>>>) {
    super(`no datapath can run here: ${Object.entries(reasons).map(([k, r]) => `${k}: ${r}`).join('; ')}`);
  }
}

export async function selectDatapath(choice: DatapathChoice, host: DatapathHost, factories: readonly DatapathFactory[]): Promise<DatapathSelection> {
  const candidates = choice === 'auto' ? factories : factories.filter((f) => f.kind === choice);
  const reasons: Partial<Record<DatapathKind, string>> = {};
  if (candidates.length === 0) reasons[choice as DatapathKind] = 'not built into this agent';
  for (const factory of candidates) {
    const probe = await factory.probe(host);
    if (probe.ok) return { datapath: factory.create(), passedOver: reasons };
    reasons[factory.kind] = probe.reason;
  }
  throw new NoDatapathError(reasons);
}
