// `podnet drift`: per host "in sync" or its differences, then the network's verdict; or the
// drift JSON (the format CI reads).
import type { NetworkDrift } from '../engine/drift';
import { driftJson, printJson } from './json';
import { palette, type Palette, type Streams, type ViewType } from './view';

export function renderDrift(drift: NetworkDrift, p: Palette): string {
  const lines: string[] = [];
  for (const h of drift.hosts) {
    if (h.error) {
      lines.push(p.remove(`${h.node} (${h.address}): ERROR ${h.error.message}`));
      continue;
    }
    lines.push(
      h.inSync ? `${h.node} (${h.address}): in sync` : p.change(`${h.node} (${h.address}): ${h.differences.length} difference(s)`),
    );
    for (const d of h.differences) {
      // A route reads best as the route itself; anything else as expected against actual.
      const detail = d.kind.startsWith('route-')
        ? (d.expected ?? d.actual ?? '')
        : [d.expected ? `expected ${d.expected}` : '', d.actual ? `actual ${d.actual}` : ''].filter(Boolean).join(', ');
      lines.push(`  ${d.kind} ${d.subject}${detail ? `: ${detail}` : ''}`);
    }
  }
  lines.push(drift.inSync ? `network ${drift.network}: in sync` : `network ${drift.network}: DRIFT`);
  return lines.join('\n') + '\n';
}

export interface DriftView {
  result(drift: NetworkDrift): void;
}

export function driftView(type: ViewType, streams: Streams): DriftView {
  if (type === 'json') return { result: (d) => streams.out(printJson(driftJson(d))) };
  return { result: (d) => streams.out(renderDrift(d, palette(streams.color))) };
}
