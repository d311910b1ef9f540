// npm run bench:control -- --hosts N          (or --hosts 3,30: both labs, rounds interleaved)
// Control-plane timings on N lab hosts: fresh apply, no-op apply, drift, destroy, each
// measured end to end through the real CLI (process start and the lab re-exec included).
// With --cdktf 3 (host counts), each round then runs the same network through the real cdktf CLI and terraform
// (deploy fresh, deploy no-op, destroy) from the lab's workstation: the cost Terraform adds.
// Ends with one JSON line per host count. Before it, per step: the lab hosts' CPU time (their cgroups) and the
// whole machine's, because on one machine the hosts share its cores and their CPU sets the floor.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { referenceApp } from '../../examples/reference-network';
import { labDown, labUp, readLab } from '../../src/lab';
import { loadState } from '../../src/lab/lab-state';
import { AGENT_RUNTIME_CHOICES, type AgentRuntimeChoice, type NodeSpec } from '../../src/model';

const root = join(__dirname, '..', '..');

function podnet(args: string[]): Promise<{ code: number; seconds: number; out: string }> {
  return timed(process.execPath, [join(root, 'bin', 'podnet'), ...args]);
}

/** Runs a command to its end: exit code, wall seconds, output. */
function timed(
  file: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number; seconds: number; out: string }> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve) => {
    execFile(file, args, { maxBuffer: 64 << 20, timeout: 600_000, ...opts }, (err, stdout, stderr) => {
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

/**
 * CPU seconds used so far by this process's finished children and their descendants (Linux
 * cutime + cstime): the workstation's side of a step (podnet, or cdktf, terraform and the
 * podnet processes terraform runs), the lab hosts not included.
 */
function workstationCpuSeconds(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8')
    .replace(/^.*\) /, '')
    .split(' ');
  return (Number(fields[13]) + Number(fields[14])) / 100; // fields 16 and 17 of stat(5), USER_HZ 100
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

type PodnetStep = 'fresh' | 'noop' | 'drift' | 'destroy';
const PODNET_STEPS: readonly PodnetStep[] = ['fresh', 'noop', 'drift', 'destroy'];
type CdktfStep = 'cdktfFresh' | 'cdktfNoop' | 'cdktfDestroy';
const CDKTF_STEPS: readonly CdktfStep[] = ['cdktfFresh', 'cdktfNoop', 'cdktfDestroy'];
type Step = PodnetStep | CdktfStep;
const STEP_LABEL: Record<Step, string> = {
  fresh: 'fresh',
  noop: 'noop',
  drift: 'drift',
  destroy: 'destroy',
  cdktfFresh: 'cdktf deploy fresh',
  cdktfNoop: 'cdktf deploy no-op',
  cdktfDestroy: 'cdktf destroy',
};

/** One lab of N hosts and what was measured on it. */
interface Subject {
  readonly hosts: number;
  readonly lab: string;
  manifest: string;
  /** The cdktf project (examples/network-json.ts and its network.json), with --cdktf. */
  project?: string;
  readonly wall: Record<Step, number[]>;
  readonly cpu: Record<Step, string[]>;
  /** The workstation's CPU seconds of each round. */
  readonly wsCpu: Record<Step, number[]>;
}

async function prepare(subject: Subject, work: string, runtime: AgentRuntimeChoice, cdktf: boolean): Promise<void> {
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
  if (!cdktf) return;
  // The same network for cdktf, run from the workstation namespace (so no --lab in podnetArgs).
  const info = readLab(lab)!;
  subject.project = join(work, `cdktf-${hosts}`);
  mkdirSync(subject.project);
  writeFileSync(
    join(subject.project, 'cdktf.json'),
    JSON.stringify({
      language: 'typescript',
      app: `${join(root, 'node_modules', '.bin', 'tsx')} ${join(root, 'examples', 'network-json.ts')}`,
      projectId: 'podnet-bench',
      sendCrashReports: 'false',
    }),
  );
  writeFileSync(
    join(subject.project, 'network.json'),
    JSON.stringify({
      name: 'cluster',
      clusterCidr: '10.244.0.0/16',
      backend: { type: 'ipip' },
      agentRuntime: runtime,
      ssh: { user: 'root', privateKeyPath: info.sshKeyPath, knownHostsPath: info.knownHostsPath },
      nodes,
    }),
  );
}

/** `cdktf deploy` / `cdktf destroy` of the subject's project from its lab's workstation namespace. */
function cdktf(subject: Subject, command: 'deploy' | 'destroy'): Promise<{ code: number; seconds: number; out: string }> {
  const env = {
    ...process.env,
    PATH: `${join(root, 'bin')}:${process.env.PATH}`,
    TF_CLI_CONFIG_FILE: '/dev/null',
    CHECKPOINT_DISABLE: '1',
    CI: '1',
    NO_COLOR: '1',
  };
  return timed(
    'ip',
    [
      'netns',
      'exec',
      readLab(subject.lab)!.workstation.netns,
      join(root, 'node_modules', '.bin', 'cdktf'),
      command,
      'reference',
      '--auto-approve',
    ],
    { cwd: subject.project!, env },
  );
}

/** fresh apply, no-op apply, drift, destroy: every round is fresh (destroy removes podnet's files). */
async function measureRound(subject: Subject, round: number): Promise<void> {
  const common = ['--manifest', subject.manifest, '--lab', subject.lab, '--parallel', '32'];
  const args: Record<PodnetStep, string[]> = {
    fresh: ['apply', ...common],
    noop: ['apply', ...common],
    drift: ['drift', ...common],
    destroy: ['destroy', ...common],
  };
  const run = (step: Step) =>
    step in args ? podnet(args[step as PodnetStep]) : cdktf(subject, step === 'cdktfDestroy' ? 'destroy' : 'deploy');
  for (const step of subject.project ? [...PODNET_STEPS, ...CDKTF_STEPS] : PODNET_STEPS) {
    const [hostsBefore, machineBefore, wsBefore] = [hostsCpuSeconds(subject.lab), machineCpuSeconds(), workstationCpuSeconds()];
    const r = await run(step);
    if (r.code !== 0) throw new Error(`${STEP_LABEL[step]} on ${subject.hosts} hosts exited ${r.code}:\n${r.out}`);
    const [hostsCpu, machineCpu, wsCpu] = [
      hostsCpuSeconds(subject.lab) - hostsBefore,
      machineCpuSeconds() - machineBefore,
      workstationCpuSeconds() - wsBefore,
    ];
    subject.wall[step].push(r.seconds);
    subject.wsCpu[step].push(wsCpu);
    subject.cpu[step].push(`workstation ${wsCpu.toFixed(2)} / hosts ${hostsCpu.toFixed(1)} / machine ${machineCpu.toFixed(1)} CPU-s`);
    process.stderr.write(
      `round ${round + 1}, ${subject.hosts} hosts, ${STEP_LABEL[step]}: ${r.seconds.toFixed(2)} s (${subject.cpu[step].at(-1)})\n`,
    );
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      hosts: { type: 'string', default: '3' },
      rounds: { type: 'string', default: '3' },
      lab: { type: 'string', default: 'ctlbench' },
      runtime: { type: 'string', default: 'auto' },
      cdktf: { type: 'string', default: '' },
    },
  });
  const runtime = values.runtime as AgentRuntimeChoice;
  if (!AGENT_RUNTIME_CHOICES.includes(runtime)) throw new Error(`--runtime must be one of ${AGENT_RUNTIME_CHOICES.join(', ')}`);
  // Several counts (--hosts 3,30) are measured in one run, rounds interleaved, so that their
  // ratio is not skewed by what else the machine did between two runs.
  const counts = values.hosts!.split(',').map(Number);
  if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > 150))
    throw new Error('--hosts takes host counts from 1 to 150, e.g. 3 or 3,30');
  const rounds = Number(values.rounds);
  const empty = <T>(): Record<Step, T[]> => ({
    fresh: [],
    noop: [],
    drift: [],
    destroy: [],
    cdktfFresh: [],
    cdktfNoop: [],
    cdktfDestroy: [],
  });
  const subjects: Subject[] = counts.map((hosts) => ({
    hosts,
    lab: counts.length > 1 ? `${values.lab}${hosts}` : values.lab!,
    manifest: '',
    wall: empty(),
    cpu: empty(),
    wsCpu: empty(),
  }));
  const work = mkdtempSync(join(tmpdir(), 'podnet-bench-'));
  try {
    // --cdktf 3: the cdktf steps on the 3-host lab only (a list, like --hosts).
    const cdktfCounts = values.cdktf ? values.cdktf.split(',').map(Number) : [];
    for (const subject of subjects) await prepare(subject, work, runtime, cdktfCounts.includes(subject.hosts));
    for (let round = 0; round < rounds; round++) for (const subject of subjects) await measureRound(subject, round);
  } finally {
    // Last up, first down: each lab puts back the sysctls it raised as it found them.
    for (const subject of [...subjects].reverse()) await labDown(subject.lab).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
  for (const subject of subjects) {
    process.stderr.write(`${subject.hosts} hosts, agentRuntime ${runtime}: medians (wall), and the CPU of each round\n`);
    for (const step of [...PODNET_STEPS, ...CDKTF_STEPS].filter((s) => subject.wall[s].length > 0))
      process.stderr.write(
        `  ${STEP_LABEL[step].padEnd(18)} ${median(subject.wall[step]).toFixed(2)} s   ${subject.cpu[step].join('; ')}\n`,
      );
  }
  if (subjects.length > 1) {
    const [first, last] = [subjects[0]!, subjects.at(-1)!];
    const ratio = (step: Step) => (median(last.wall[step]) / median(first.wall[step])).toFixed(1);
    process.stderr.write(`${last.hosts} / ${first.hosts} hosts: ${PODNET_STEPS.map((step) => `${step} ${ratio(step)}x`).join(', ')}\n`);
    // The engine's scaling figure: workstation CPU per host, median of the rounds.
    const perHost = (s: Subject, step: Step) => median(s.wsCpu[step]) / s.hosts;
    process.stderr.write(
      `workstation CPU per host, ${last.hosts} vs ${first.hosts} hosts: ${PODNET_STEPS.map((step) => `${step} ${(perHost(last, step) * 1000).toFixed(0)} vs ${(perHost(first, step) * 1000).toFixed(0)} ms (${(median(last.wsCpu[step]) / median(first.wsCpu[step])).toFixed(2)}x total)`).join(', ')}\n`,
    );
  }
  for (const subject of subjects) {
    const line = {
      hosts: subject.hosts,
      fresh_apply_s: +median(subject.wall.fresh).toFixed(2),
      noop_apply_s: +median(subject.wall.noop).toFixed(2),
      drift_s: +median(subject.wall.drift).toFixed(2),
      destroy_s: +median(subject.wall.destroy).toFixed(2),
      workstation_cpu_s: Object.fromEntries(PODNET_STEPS.map((step) => [step, +median(subject.wsCpu[step]).toFixed(2)])),
      ...(subject.project
        ? {
            cdktf_deploy_fresh_s: +median(subject.wall.cdktfFresh).toFixed(2),
            cdktf_deploy_noop_s: +median(subject.wall.cdktfNoop).toFixed(2),
            cdktf_destroy_s: +median(subject.wall.cdktfDestroy).toFixed(2),
            cdktf_workstation_cpu_s: Object.fromEntries(CDKTF_STEPS.map((step) => [step, +median(subject.wsCpu[step]).toFixed(2)])),
          }
        : {}),
    };
    process.stdout.write(JSON.stringify(line) + '\n');
  }
}

main().catch((err) => {
  process.stderr.write(`bench:control failed: ${(err as Error).message}\n`);
  process.exit(1);
});
