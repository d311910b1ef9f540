// Why an agent is not converged, as the status's degradedReasons lists it. `converged` means
// traffic can flow: nothing left differing (repairable or not), the datapath attached and
// counting, no repair held back by backoff. Pure.
import type { BackoffEntry } from './backoff';
import { describeDifference, type ReconcileOutcome } from './reconciler';

export function degradedReasons(outcome: ReconcileOutcome, delayed: readonly BackoffEntry[]): string[] {
  const held = new Set(delayed.map((d) => d.key));
  return [
    ...outcome.problems,
    ...outcome.remaining.map(
      (d) => `${describeDifference(d)}${held.has(`${d.kind} ${d.subject}`) ? ' (repair delayed: something keeps undoing it)' : ''}`,
    ),
  ];
}
