// Medians per mode, the table and the JSON line.
import type { TcpResult, UdpResult } from './measure';
import type { ModeId } from './modes';
import { median, round } from './util';

export interface RunRecord {
  round: number;
  mode: ModeId;
  startedAt: string;
  seconds?: number;
  facts?: Record<string, unknown>;
  tcp?: TcpResult;
  udp?: UdpResult;
  after?: Record<string, unknown>;
  error?: string;
  /** What the mode's own teardown left and the benchmark removed. */
  leftovers?: string[];
}

export interface ModeSummary {
  mode: ModeId;
  runs: number;
  ok: number;
  gbps: number | null;
  /** each run's figure, in round order */
  gbpsRuns: number[];
  pps: number | null;
  retransmits: number | null;
  /** iperf3 (both ends) + the datapath's daemons + the machine's ksoftirqd, in cores, per Gbit/s */
  cpuPerGbps: number | null;
  /** the whole machine's busy cores (everyone's load) per Gbit/s */
  machineCpuPerGbps: number | null;
  /** daemons alone (agent / openvpn), cores */
  daemonCores: number | null;
  /** the larger of the two hosts' agent VmRSS, MB */
  agentRssMb: number | null;
  errors: string[];
  /** what the mode's teardown left behind (the benchmark removed it), once each */
  leftovers: string[];
  unavailable?: string;
}

export interface Summary {
  modes: Partial<Record<ModeId, ModeSummary>>;
  /** ratios of the medians */
  ratios: Ratios;
  /** median of the per-round ratios (both modes measured in the same round): less sensitive to load drift between rounds */
  pairedRatios: Ratios;
  targets: { ebpfOverVxlan: { target: 1.0; met: boolean | null }; userspaceOverOpenvpn: { target: 1.5; met: boolean | null } };
}

/** TCP throughput ratios; null where a mode of the pair was not measured (kernel: --vm only). */
export interface Ratios {
  ebpfOverVxlan: number | null;
  userspaceOverOpenvpn: number | null;
  underlayOverVxlan: number | null;
  kernelOverVxlan: number | null;
  ebpfOverKernel: number | null;
}

function attributedCores(t: TcpResult): number {
  return t.iperfCores + t.daemonCores + t.ksoftirqdCores;
}

function rssOf(after: Record<string, unknown> | undefined): number | undefined {
  if (!after) return undefined;
  const v = Object.entries(after)
    .filter(([k, x]) => k.endsWith('.agentRssMb') && typeof x === 'number')
    .map(([, x]) => x as number);
  return v.length ? Math.max(...v) : undefined;
}

export function summarize(runs: readonly RunRecord[], modes: readonly ModeId[], unavailable: ReadonlyMap<ModeId, string>): Summary {
  const out: Partial<Record<ModeId, ModeSummary>> = {};
  for (const m of modes) {
    const all = runs.filter((r) => r.mode === m);
    const ok = all.filter((r) => r.tcp && r.udp && !r.error);
    const per = (f: (r: RunRecord) => number | undefined): number | null => median(ok.map(f).filter((x): x is number => x !== undefined));
    out[m] = {
      mode: m,
      runs: all.length,
      ok: ok.length,
      gbps: per((r) => r.tcp!.gbps),
      gbpsRuns: ok.map((r) => round(r.tcp!.gbps, 3)!),
      pps: per((r) => r.udp!.pps),
      retransmits: per((r) => r.tcp!.retransmits),
      cpuPerGbps: per((r) => attributedCores(r.tcp!) / r.tcp!.gbps),
      machineCpuPerGbps: per((r) => r.tcp!.machineCores / r.tcp!.gbps),
      daemonCores: per((r) => r.tcp!.daemonCores),
      agentRssMb: per((r) => rssOf(r.after)),
      errors: all.filter((r) => r.error).map((r) => `round ${r.round}: ${r.error}`),
      leftovers: [...new Set(all.flatMap((r) => r.leftovers ?? []))],
      ...(unavailable.has(m) ? { unavailable: unavailable.get(m)! } : {}),
    };
  }
  const g = (m: ModeId): number | null => out[m]?.gbps ?? null;
  const ratio = (a: ModeId, b: ModeId): number | null => {
    const x = g(a);
    const y = g(b);
    return x !== null && y ? x / y : null;
  };
  const paired = (a: ModeId, b: ModeId): number | null => {
    const rounds = [...new Set(runs.map((r) => r.round))];
    const ok = (m: ModeId, n: number): RunRecord | undefined => runs.find((r) => r.mode === m && r.round === n && r.tcp && !r.error);
    return median(
      rounds.flatMap((n) => {
        const x = ok(a, n);
        const y = ok(b, n);
        return x && y ? [x.tcp!.gbps / y.tcp!.gbps] : [];
      }),
    );
  };
  const ebpfOverVxlan = ratio('ebpf', 'vxlan');
  const userspaceOverOpenvpn = ratio('userspace', 'openvpn');
  return {
    modes: out,
    ratios: {
      ebpfOverVxlan,
      userspaceOverOpenvpn,
      underlayOverVxlan: ratio('underlay', 'vxlan'),
      kernelOverVxlan: ratio('kernel', 'vxlan'),
      ebpfOverKernel: ratio('ebpf', 'kernel'),
    },
    pairedRatios: {
      ebpfOverVxlan: paired('ebpf', 'vxlan'),
      userspaceOverOpenvpn: paired('userspace', 'openvpn'),
      underlayOverVxlan: paired('underlay', 'vxlan'),
      kernelOverVxlan: paired('kernel', 'vxlan'),
      ebpfOverKernel: paired('ebpf', 'kernel'),
    },
    targets: {
      ebpfOverVxlan: { target: 1.0, met: ebpfOverVxlan === null ? null : ebpfOverVxlan >= 1.0 },
      userspaceOverOpenvpn: { target: 1.5, met: userspaceOverOpenvpn === null ? null : userspaceOverOpenvpn >= 1.5 },
    },
  };
}

const LABELS: Record<ModeId, string> = {
  underlay: '(a) underlay, no encap (podnet directRouting)',
  vxlan: '(b) kernel vxlan, flannel style',
  ebpf: '(c) podnet ebpf (auto)',
  userspace: '(d) podnet userspace',
  openvpn: '(e) OpenVPN p2p UDP, no crypto',
  kernel: '(k) kernel ipip (podnet datapath auto)',
};
/** Between VM hosts auto picks kernel, so ebpf is forced there. */
const VM_LABELS: Partial<Record<ModeId, string>> = { ebpf: '(c) podnet ebpf (datapath ebpf forced)' };

const fmt = (x: number | null | undefined, d = 2): string => (x === null || x === undefined ? '-' : x.toFixed(d));

export function renderTable(
  s: Summary,
  o: { rounds: number; tcpSeconds: number; udpSeconds: number; affinity?: string; vm?: boolean },
): string {
  const vx = s.modes.vxlan?.gbps ?? null;
  const head = [
    'mode',
    'TCP Gbit/s',
    'runs',
    '/ vxlan',
    'UDP 64 B kpps',
    'CPU cores per Gbit/s',
    'machine cores per Gbit/s',
    'agent RSS MB',
  ];
  const rows = (Object.values(s.modes) as ModeSummary[]).map((m) => [
    (o.vm && VM_LABELS[m.mode]) || LABELS[m.mode],
    m.unavailable ? 'n/a' : fmt(m.gbps),
    `${m.ok}/${m.runs}`,
    m.gbps !== null && vx ? fmt(m.gbps / vx) : '-',
    m.pps === null ? '-' : fmt(m.pps / 1000, 1),
    fmt(m.cpuPerGbps, 3),
    fmt(m.machineCpuPerGbps, 3),
    fmt(m.agentRssMb, 1),
  ]);
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)];
  lines.push('');
  lines.push(
    `medians of ${o.rounds} round(s); TCP one stream -t ${o.tcpSeconds}, UDP 64 B -b 0 -t ${o.udpSeconds}; iperf3 ${o.affinity ? `-A ${o.affinity}` : 'not pinned'}`,
  );
  if (o.vm) {
    // Emulated CPUs (TCG) make the absolute figures meaningless; the ratios of one run are the result.
    lines.push('VM hosts: ratios only (emulated CPUs make absolute Gbit/s and pps meaningless)');
    lines.push(`k/b (kernel ipip / vxlan) = ${fmt(s.ratios.kernelOverVxlan)}; per-round median ${fmt(s.pairedRatios.kernelOverVxlan)}`);
    lines.push(`c/k (ebpf / kernel ipip) = ${fmt(s.ratios.ebpfOverKernel)}; per-round median ${fmt(s.pairedRatios.ebpfOverKernel)}`);
    lines.push(`c/b (ebpf / vxlan) = ${fmt(s.ratios.ebpfOverVxlan)}; per-round median ${fmt(s.pairedRatios.ebpfOverVxlan)}`);
    lines.push(
      `agent CPU during TCP (both guests, emulated cores): ${(['kernel', 'ebpf'] as const).map((m) => `${m} ${fmt(s.modes[m]?.daemonCores ?? null, 3)}`).join(', ')}`,
    );
    return lines.concat(problems(s)).join('\n');
  }
  const met = (t: { met: boolean | null }): string => (t.met === null ? 'n/a' : t.met ? 'met' : 'NOT met');
  lines.push(
    `c/b (ebpf / vxlan) = ${fmt(s.ratios.ebpfOverVxlan)} (target >= 1.0: ${met(s.targets.ebpfOverVxlan)}); per-round median ${fmt(s.pairedRatios.ebpfOverVxlan)}`,
  );
  lines.push(
    `d/e (userspace / openvpn) = ${fmt(s.ratios.userspaceOverOpenvpn)} (target >= 1.5: ${met(s.targets.userspaceOverOpenvpn)}); per-round median ${fmt(s.pairedRatios.userspaceOverOpenvpn)}`,
  );
  lines.push(`a/b (underlay / vxlan) = ${fmt(s.ratios.underlayOverVxlan)}; per-round median ${fmt(s.pairedRatios.underlayOverVxlan)}`);
  return lines.concat(problems(s)).join('\n');
}

/** Unavailable modes, failed runs and teardown leftovers, one line each. */
function problems(s: Summary): string[] {
  const lines: string[] = [];
  for (const m of Object.values(s.modes) as ModeSummary[]) {
    if (m.unavailable) lines.push(`${m.mode}: unavailable: ${m.unavailable}`);
    else for (const e of m.errors) lines.push(`${m.mode}: ${e}`);
    for (const l of m.leftovers) lines.push(`${m.mode}: teardown left: ${l}`);
  }
  return lines;
}

/** The issue's JSON line (last line of stdout); with --vm the ratios between VM hosts, which are what counts there. */
export function jsonLine(s: Summary, vm = false, guestKernel?: string): string {
  const g = (m: ModeId): number | null => round(s.modes[m]?.gbps, 3);
  if (vm)
    return JSON.stringify({
      vm: true,
      ...(guestKernel ? { guest_kernel: guestKernel } : {}),
      kernel_over_vxlan: round(s.ratios.kernelOverVxlan, 3),
      ebpf_over_kernel: round(s.ratios.ebpfOverKernel, 3),
      ebpf_over_vxlan: round(s.ratios.ebpfOverVxlan, 3),
      kernel_gbps: g('kernel'),
      vxlan_gbps: g('vxlan'),
      ebpf_gbps: g('ebpf'),
    });
  return JSON.stringify({
    underlay_gbps: g('underlay'),
    vxlan_gbps: g('vxlan'),
    ebpf_gbps: g('ebpf'),
    ebpf_pps: round(s.modes.ebpf?.pps, 0),
    agent_rss_mb: round(s.modes.ebpf?.agentRssMb, 1),
    userspace_gbps: g('userspace'),
    openvpn_gbps: g('openvpn'),
  });
}
