// `podnet destroy`: one line per host (what was done, why it was skipped, or why it failed);
// or the destroy JSON.
import type { DestroyHostResult, NetworkDestroy } from '../engine/destroy';
import { destroyJson, printJson, skippedText } from './json';
import type { Streams, ViewType } from './view';

function renderHost(r: DestroyHostResult): string {
  switch (r.outcome) {
    case 'destroyed':
      return `${r.node}: ${r.steps.join(', ')}`;
    case 'skipped':
      return `${r.node}: ${skippedText(r.heldRevision, r.wantedRevision)}`;
    case 'failed':
      return `${r.node}: FAILED: ${r.error.message}`;
  }
}

export function renderDestroy(destroy: NetworkDestroy): string {
  return destroy.hosts.map((h) => renderHost(h) + '\n').join('');
}

export interface DestroyView {
  result(destroy: NetworkDestroy): void;
}

export function destroyView(type: ViewType, streams: Streams): DestroyView {
  if (type === 'json') return { result: (d) => streams.out(printJson(destroyJson(d))) };
  return { result: (d) => streams.out(renderDestroy(d)) };
}
