// npm run bench:control -- --hosts N          (or --hosts 3,30: both labs, rounds interleaved)
// Control-plane timings on N lab hosts: fresh apply, no-op apply, drift, destroy, each
// measured end to end through the real CLI (process start and the lab re-exec included).
// Ends with one JSON line per host count. Before it, per step: the lab hosts' CPU time (their cgroups) and the
// whole machine's, because on one machine the hosts share its cores and their CPU sets the floor.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { referenceApp } from '../../examples/reference-network';
import { labDown, labUp, readLab } from '../../src/lab';
import { loadState } from '../../src/lab/lab-state';
import { AGENT_RUNTIME_CHOICES, type AgentRuntimeChoice, type NodeSpec } from '../../src/model';

const root = join(__dirname, '..', '..');

function podnet(args: string[]): Promise<{ code: number; seconds: number; out: string }> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve) => {
    execFile(process.execPath, [join(root, 'bin', 'podnet'), ...args], { maxBuffer: 64 << 20, timeout: 600_000 }, (err, stdout, stderr) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, seconds, out: String(stdout) + String(stderr) });
    });
  });
}

/** CPU seconds used so far by the lab's hosts (everything in their cgroups: systemd, sshd, agents). */
function hostsCpuSeconds(lab: string): number {
  const dirs = (loadState(lab)?.made.cgroups ?? []).filter((d) => existsSync(`${d}/cpu.stat`));
  let usec = 0;
  for (const d of dirs) usec += Number(/^usage_usec (\d+)$/m.exec(readFileSync(`${d}/cpu.stat`, 'utf8'))?.[1] ?? 0);
  return usec / 1e6;
}

/** CPU seconds the whole machine has been busy (user, nice, system, irq, softirq), all cores. */
function machineCpuSeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]!) / 100; // USER_HZ is 100 on Linux
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

type Step = 'fresh' | 'noop' | 'drift' | 'destroy';
const STEPS: readonly Step[] = ['fresh', 'noop', 'drift', 'destroy'];

/** One lab of N hosts and what was measured on it. */
interface Subject {
  readonly hosts: number;
  readonly lab: string;
  manifest: string;
  readonly wall: Record<Step, number[]>;
  readonly cpu: Record<Step, string[]>;
}

async function prepare(subject: Subject, work: string, runtime: AgentRuntimeChoice): Promise<void> {
  const { hosts, lab } = subject;
  if (readLab(lab)) await labDown(lab);
  const t0 = Date.now();
  await labUp({ name: lab, hosts });
  process.stderr.write(`lab ${lab}: ${hosts} hosts up in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  const names = ['master', ...Array.from({ length: hosts - 1 }, (_, i) => `node${i + 1}`)];
  const nodes: NodeSpec[] = names.map((name, i) => ({ name, address: `192.168.0.${80 + i}` }));
  const outdir = join(work, `out-${hosts}`);
  referenceApp({ outdir, lab, nodes }).synth();
  const synthesized = JSON.parse(readFileSync(join(outdir, 'stacks', 'reference', 'assets', 'podnet-cluster', 'manifest.json'), 'utf8'));
  subject.manifest = join(work, `manifest-${hosts}.json`);
  writeFileSync(subject.manifest, JSON.stringify({ ...synthesized, network: { ...synthesized.network, agentRuntime: runtime } }));
}

/** fresh apply, no-op apply, drift, destroy: every round is fresh (destroy removes podnet's files). */
async function measureRound(subject: Subject, round: number): Promise<void> {
  const common = ['--manifest', subject.manifest, '--lab', subject.lab, '--parallel', '32'];
  const args: Record<Step, string[]> = { fresh: ['apply', ...common], noop: ['apply', ...common], drift: ['drift', ...common], destroy: ['destroy', ...common] };
  for (const step of STEPS) {
    const [hostsBefore, machineBefore] = [hostsCpuSeconds(subject.lab), machineCpuSeconds()];
    const r = await podnet(args[step]);
    if (r.code !== 0) throw new Error(`${args[step][0]} on ${subject.hosts} hosts exited ${r.code}:\n${r.out}`);
    const [hostsCpu, machineCpu] = [hostsCpuSeconds(subject.lab) - hostsBefore, machineCpuSeconds() - machineBefore];
    subject.wall[step].push(r.seconds);
    subject.cpu[step].push(`hosts ${hostsCpu.toFixed(1)} / machine ${machineCpu.toFixed(1)} CPU-s`);
    process.stderr.write(`round ${round + 1}, ${subject.hosts} hosts, ${step}: ${r.seconds.toFixed(2)} s (${subject.cpu[step].at(-1)})\n`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { hosts: { type: 'string', default: '3' }, rounds: { type: 'string', default: '3' }, lab: { type: 'string', default: 'ctlbench' }, runtime: { type: 'string', default: 'auto' } },
  });
  const runtime = values.runtime as AgentRuntimeChoice;
  if (!AGENT_RUNTIME_CHOICES.includes(runtime)) throw new Error(`--runtime must be one of ${AGENT_RUNTIME_CHOICES.join(', ')}`);
  // Several counts (--hosts 3,30) are measured in one run, rounds interleaved, so that their
  // ratio is not skewed by what else the machine did between two runs.
  const counts = values.hosts!.split(',').map(Number);
  if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > 150)) throw new Error('--hosts takes host counts from 1 to 150, e.g. 3 or 3,30');
  const rounds = Number(values.rounds);
  const empty = <T>(): Record<Step, T[]> => ({ fresh: [], noop: [], drift: [], destroy: [] });
  const subjects: Subject[] = counts.map((hosts) => ({ hosts, lab: counts.length > 1 ? `${values.lab}${hosts}` : values.lab!, manifest: '', wall: empty(), cpu: empty() }));
  const work = mkdtempSync(join(tmpdir(), 'podnet-bench-'));
  try {
    for (const subject of subjects) await prepare(subject, work, runtime);
    for (let round = 0; round < rounds; round++) for (const subject of subjects) await measureRound(subject, round);
  } finally {
    // Last up, first down: each lab puts back the sysctls it raised as it found them.
    for (const subject of [...subjects].reverse()) await labDown(subject.lab).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
  for (const subject of subjects) {
    process.stderr.write(`${subject.hosts} hosts, agentRuntime ${runtime}: medians (wall), and the CPU of each round\n`);
    for (const step of STEPS) process.stderr.write(`  ${step.padEnd(7)} ${median(subject.wall[step]).toFixed(2)} s   ${subject.cpu[step].join('; ')}\n`);
  }
  if (subjects.length > 1) {
    const [first, last] = [subjects[0]!, subjects.at(-1)!];
    const ratio = (step: Step) => (median(last.wall[step]) / median(first.wall[step])).toFixed(1);
    process.stderr.write(`${last.hosts} / ${first.hosts} hosts: ${STEPS.map((step) => `${step} ${ratio(step)}x`).join(', ')}\n`);
  }
  for (const subject of subjects) {
    const line = {
      hosts: subject.hosts,
      fresh_apply_s: +median(subject.wall.fresh).toFixed(2),
      noop_apply_s: +median(subject.wall.noop).toFixed(2),
      drift_s: +median(subject.wall.drift).toFixed(2),
      destroy_s: +median(subject.wall.destroy).toFixed(2),
    };
    process.stdout.write(JSON.stringify(line) + '\n');
  }
}

main().catch((err) => {
  process.stderr.write(`bench:control failed: ${(err as Error).message}\n`);
  process.exit(1);
});
