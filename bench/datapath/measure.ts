// One measurement of one mode: warm-up ping, iperf3 TCP (one stream) and 64-byte UDP between the
// pods on HOST_A (client) and HOST_B (server), with CPU accounting around the TCP run.
import { readFileSync, readdirSync } from 'node:fs';
import { podExec } from '../../src/lab';
import { HOST_A, HOST_B, POD, benchLab, hostShQuiet, onVmHosts, sleep, type BenchHost } from './util';

/** USER_HZ: /proc/stat and /proc/PID/stat count in 1/100 s on Linux. */
const TICKS_PER_SECOND = 100;
const IPERF_PORT = 5201;
const IPERF_PIDFILE = '/run/dpbench-iperf3.pid';

/** A process whose CPU belongs to the datapath (agent, openvpn), by its PID inside its host. */
export interface Daemon {
  readonly host: string;
  readonly pid: number;
  readonly what: string;
}

export interface TcpResult {
  gbps: number;
  retransmits: number;
  seconds: number;
  /** iperf3's own CPU (sender + receiver, user + system; softirq work done in their context is included: no IRQ time accounting). */
  iperfCores: number;
  /** utime+stime of the datapath's daemons on both hosts (agent / openvpn), in cores. */
  daemonCores: number;
  /** ksoftirqd threads of the machine (machine-wide: may include others' traffic), in cores. */
  ksoftirqdCores: number;
  /** Busy share of every CPU of the machine from /proc/stat (includes everyone else's load), in cores. */
  machineCores: number;
}
export interface UdpResult {
  pps: number;
  offeredPps: number;
  lossPercent: number;
  seconds: number;
}

/** Sum of non-idle ticks and of all ticks over every CPU, from the machine's /proc/stat. */
function machineTicks(): { busy: number; total: number } {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice (guest is already in user)
  const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0);
  return { busy: total - idle, total };
}

function statTicks(stat: string): number {
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields after the comm: state(3) ... utime(14) stime(15) -> indexes 11, 12 here
  return Number(f[11]) + Number(f[12]);
}

function ksoftirqdTicks(): number {
  let sum = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (/\(ksoftirqd\/\d+\)/.test(stat)) sum += statTicks(stat);
    } catch {
      // the process went away
    }
  }
  return sum;
}

async function daemonTicks(daemons: readonly Daemon[]): Promise<number> {
  const byHost = new Map<string, number[]>();
  for (const d of daemons) byHost.set(d.host, [...(byHost.get(d.host) ?? []), d.pid]);
  const parts = await Promise.all(
    [...byHost].map(async ([host, pids]) => {
      const r = await hostShQuiet(host, pids.map((p) => `cat /proc/${p}/stat`).join('; '));
      return r.stdout
        .split('\n')
        .filter((l) => l.includes(')'))
        .reduce((a, l) => a + statTicks(l), 0);
    }),
  );
  return parts.reduce((a, b) => a + b, 0);
}

/**
 * Waits until the daemons (both hosts' agents) have been quiet for one `windowS` window: below
 * `maxCores` together. On VM hosts an agent's start and the passes that adding the pods wakes
 * cost tens of emulated CPU-seconds, one-off work that must not be charged to the datapath's
 * steady state. Returns the seconds waited (at most about `maxWaitS`; then it measures anyway).
 */
export async function waitForQuietDaemons(daemons: readonly Daemon[], windowS = 5, maxCores = 0.2, maxWaitS = 120): Promise<number> {
  const t0 = Date.now();
  let before = await daemonTicks(daemons);
  while ((Date.now() - t0) / 1000 < maxWaitS) {
    const w0 = Date.now();
    await sleep(windowS * 1000);
    const now = await daemonTicks(daemons);
    const cores = (now - before) / TICKS_PER_SECOND / ((Date.now() - w0) / 1000);
    before = now;
    if (cores < maxCores) break;
  }
  return (Date.now() - t0) / 1000;
}

export async function podIp(host: BenchHost): Promise<string> {
  const r = await podExec(benchLab(), host.name, POD, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
  const m = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(r.stdout);
  if (!m) throw new Error(`pod ${POD} on ${host.name} has no IPv4 address: ${r.stdout}${r.stderr}`);
  return m[1]!;
}

/** Pings until the peer pod answers (ARP, neighbour and fast-path maps settle), or throws. */
export async function warmUp(serverIp: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs * (onVmHosts() ? 6 : 1);
  let last = '';
  while (Date.now() < deadline) {
    const r = await podExec(benchLab(), HOST_A.name, POD, ['ping', '-c', '3', '-i', '0.2', '-W', '1', serverIp], {
      timeoutMs: onVmHosts() ? 30_000 : 5_000,
    });
    if (r.code === 0) return;
    last = (r.stdout + r.stderr).trim().split('\n').slice(-2).join(' ');
    await sleep(300);
  }
  throw new Error(`pod ${HOST_A.name}/${POD} cannot reach ${serverIp}: ${last}`);
}

export async function startServer(): Promise<void> {
  const r = await podExec(benchLab(), HOST_B.name, POD, ['iperf3', '-s', '-D', '-p', String(IPERF_PORT), '-I', IPERF_PIDFILE]);
  if (r.code !== 0) throw new Error(`iperf3 server did not start: ${r.stderr || r.stdout}`);
}

export async function stopServer(): Promise<void> {
  await hostShQuiet(HOST_B.name, `[ -f ${IPERF_PIDFILE} ] && kill $(cat ${IPERF_PIDFILE}) 2>/dev/null; rm -f ${IPERF_PIDFILE}; true`);
}

/** iperf3 client in HOST_A's pod; retries briefly while the daemonized server comes up. */
async function iperfClient(args: string[], seconds: number): Promise<Record<string, any>> {
  let last = '';
  for (let attempt = 0; attempt < 8; attempt++) {
    const r = await podExec(
      benchLab(),
      HOST_A.name,
      POD,
      ['iperf3', '-c', ...args, '-p', String(IPERF_PORT), '-t', String(seconds), '-J'],
      {
        timeoutMs: (seconds + (onVmHosts() ? 60 : 20)) * 1000,
      },
    );
    let doc: Record<string, any> | undefined;
    try {
      doc = JSON.parse(r.stdout) as Record<string, any>;
    } catch {
      doc = undefined;
    }
    if (r.code === 0 && doc && !doc.error) return doc;
    last = String(doc?.error ?? (r.stderr || r.stdout)).trim();
    if (!/refused|busy/i.test(last)) break;
    await sleep(250);
  }
  throw new Error(`iperf3 ${args.join(' ')}: ${last}`);
}

/**
 * iperf3 `-A client,server`: pins the two ends to different CPUs (with 2 vCPUs, the scheduler
 * otherwise sometimes puts both on one and the run loses 20-30%), or nothing.
 */
export type Affinity = string | undefined;
const affinityArgs = (a: Affinity): string[] => (a ? ['-A', a] : []);

export async function measureTcp(serverIp: string, seconds: number, daemons: readonly Daemon[], affinity?: Affinity): Promise<TcpResult> {
  const d0 = await daemonTicks(daemons);
  const k0 = ksoftirqdTicks();
  const m0 = machineTicks();
  const t0 = process.hrtime.bigint();
  const doc = await iperfClient([serverIp, ...affinityArgs(affinity)], seconds);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const m1 = machineTicks();
  const k1 = ksoftirqdTicks();
  const d1 = await daemonTicks(daemons);
  const end = doc.end;
  const cpu = end.cpu_utilization_percent ?? {};
  const ncpu = (m1.total - m0.total) / TICKS_PER_SECOND / wall; // CPUs the machine has, as /proc/stat sees them
  return {
    gbps: end.sum_received.bits_per_second / 1e9,
    retransmits: end.sum_sent.retransmits ?? 0,
    seconds: end.sum_received.seconds,
    iperfCores: ((cpu.host_total ?? NaN) + (cpu.remote_total ?? NaN)) / 100,
    // The daemon samples are taken a moment outside the iperf3 window: charge them to the wall time.
    daemonCores: (d1 - d0) / TICKS_PER_SECOND / wall,
    ksoftirqdCores: (k1 - k0) / TICKS_PER_SECOND / wall,
    machineCores: ((m1.busy - m0.busy) / (m1.total - m0.total)) * ncpu,
  };
}

export async function measureUdp(serverIp: string, seconds: number, affinity?: Affinity): Promise<UdpResult> {
  const doc = await iperfClient([serverIp, '-u', '-l', '64', '-b', '0', ...affinityArgs(affinity)], seconds);
  const rcv = doc.end.sum_received ?? doc.end.sum;
  const snt = doc.end.sum_sent ?? doc.end.sum;
  return {
    pps: (rcv.packets - rcv.lost_packets) / rcv.seconds,
    offeredPps: snt.packets / snt.seconds,
    lossPercent: rcv.lost_percent,
    seconds: rcv.seconds,
  };
}
