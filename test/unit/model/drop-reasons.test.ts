// The datapaths' drop reasons have one list: PN_DROP_REASONS in podnet-ipip.h for the eBPF
// program and its loader, src/model/drop-reasons.ts for TypeScript. Parsing the header is a cheap
// stand-in for generating one from the other (as cilium's bpf2go/dpgen do): a reason added or
// renumbered on one side only fails here.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BPF_DROP_REASONS, USERSPACE_DROP_REASONS, droppedTotal, zeroDrops } from '../../../src/model/drop-reasons';

const HEADER = join(__dirname, '../../../agent/datapaths/ebpf/bpf/podnet-ipip.h');

/** X(PN_DROP_..., index, "name") entries of PN_DROP_REASONS, PN_DROP_MAX and PN_DROP_EXT_MAX. */
function readHeader(): { entries: { id: string; index: number; name: string }[]; max: number; extMax: number } {
  const text = readFileSync(HEADER, 'utf8');
  const start = text.indexOf('#define PN_DROP_REASONS(X)');
  expect(start).toBeGreaterThanOrEqual(0);
  // The macro ends at the first line that does not continue with a backslash.
  const lines: string[] = [];
  for (const line of text.slice(start).split('\n')) {
    lines.push(line);
    if (!line.trimEnd().endsWith('\\')) break;
  }
  const entries = [...lines.join('\n').matchAll(/X\((PN_DROP_[A-Z0-9_]+),\s*(\d+),\s*"([A-Za-z0-9]+)"\)/g)].map((m) => ({
    id: m[1]!,
    index: Number(m[2]),
    name: m[3]!,
  }));
  const max = /PN_DROP_MAX\s*=\s*(\d+)/.exec(text);
  const extMax = /PN_DROP_EXT_MAX\s*=\s*(\d+)/.exec(text);
  expect(max).not.toBeNull();
  expect(extMax).not.toBeNull();
  return { entries, max: Number(max![1]), extMax: Number(extMax![1]) };
}

describe('drop reasons', () => {
  it('BPF_DROP_REASONS is PN_DROP_REASONS of podnet-ipip.h, in pn_drops index order', () => {
    const { entries } = readHeader();
    expect(entries.map((e) => e.index)).toEqual(entries.map((_, i) => i));
    expect(entries.map((e) => e.name)).toEqual([...BPF_DROP_REASONS]);
  });

  it('fits the pinned pn_drops and pn_drops_ext maps (8 slots each, sizes unchanged), old reasons in their old slots', () => {
    const { entries, max, extMax } = readHeader();
    expect({ max, extMax }).toEqual({ max: 8, extMax: 8 });
    expect(entries.length).toBeLessThanOrEqual(max + extMax);
    // The last reason in pn_drops and the first in pn_drops_ext keep their slots (pinned counters).
    const index = Object.fromEntries(entries.map((e) => [e.name, e.index]));
    expect({ fragNeeded: index.fragNeeded, fragNeededForeign: index.fragNeededForeign }).toEqual({ fragNeeded: 7, fragNeededForeign: 8 });
  });

  it('names an ECN drop the same in both datapaths', () => {
    expect(BPF_DROP_REASONS).toContain('ecn');
    expect(USERSPACE_DROP_REASONS).toContain('ecn');
    expect(readHeader().entries.find((e) => e.name === 'ecn')).toEqual({ id: 'PN_DROP_ECN', index: 6, name: 'ecn' });
  });

  it("dropped leaves out the tunnel device's own non-IPv4 noise, for every datapath alike", () => {
    expect(droppedTotal({ ...zeroDrops(BPF_DROP_REASONS), notIpv4: 50, noPeer: 1, ecn: 2 })).toBe(3);
    expect(droppedTotal({ ...zeroDrops(USERSPACE_DROP_REASONS), notIpv4: 5, sendError: 1 })).toBe(1);
    expect(droppedTotal({})).toBe(0);
  });
});
