// npm run bench:control -- --hosts N
// Control-plane timings on N lab hosts: fresh apply, no-op apply, drift, destroy, each
// measured end to end through the real CLI (process start and the lab re-exec included).
// Ends with one JSON line. Before it, per step: the lab hosts' CPU time (their cgroups) and the
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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { hosts: { type: 'string', default: '3' }, rounds: { type: 'string', default: '3' }, lab: { type: 'string', default: 'ctlbench' }, runtime: { type: 'string', default: 'auto' } },
  });
  const runtime = values.runtime as AgentRuntimeChoice;
  if (!AGENT_RUNTIME_CHOICES.includes(runtime)) throw new Error(`--runtime must be one of ${AGENT_RUNTIME_CHOICES.join(', ')}`);
  const hosts = Number(values.hosts);
  const rounds = Number(values.rounds);
  const lab = values.lab!;
  const names = ['master', ...Array.from({ length: hosts - 1 }, (_, i) => `node${i + 1}`)];
  const nodes: NodeSpec[] = names.map((name, i) => ({ name, address: `192.168.0.${80 + i}` }));
  const work = mkdtempSync(join(tmpdir(), 'podnet-bench-'));
  const results = { fresh: [] as number[], noop: [] as number[], drift: [] as number[], destroy: [] as number[] };
  const cpu = { fresh: [] as string[], noop: [] as string[], drift: [] as string[], destroy: [] as string[] };
  try {
    if (readLab(lab)) await labDown(lab);
    const t0 = Date.now();
    await labUp({ name: lab, hosts });
    process.stderr.write(`lab ${lab}: ${hosts} hosts up in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    const outdir = join(work, 'out');
    referenceApp({ outdir, lab, nodes }).synth();
    const synthesized = JSON.parse(readFileSync(join(outdir, 'stacks', 'reference', 'assets', 'podnet-cluster', 'manifest.json'), 'utf8'));
    const manifest = join(work, 'manifest.json');
    writeFileSync(manifest, JSON.stringify({ ...synthesized, network: { ...synthesized.network, agentRuntime: runtime } }));
    const common = ['--manifest', manifest, '--lab', lab, '--parallel', '32'];
    for (let round = 0; round < rounds; round++) {
      // Round 0's fresh apply also ships the runtime; later rounds reuse the host's cache of it
      // (destroy removes podnet's files, so later rounds are fresh too: runtime re-shipped).
      const steps: Array<[keyof typeof results, string[], number]> = [
        ['fresh', ['apply', ...common], 0],
        ['noop', ['apply', ...common], 0],
        ['drift', ['drift', ...common], 0],
        ['destroy', ['destroy', ...common], 0],
      ];
      for (const [key, args, want] of steps) {
        const [hostsBefore, machineBefore] = [hostsCpuSeconds(lab), machineCpuSeconds()];
        const r = await podnet(args);
        if (r.code !== want) throw new Error(`${args[0]} exited ${r.code}:\n${r.out}`);
        const [hostsCpu, machineCpu] = [hostsCpuSeconds(lab) - hostsBefore, machineCpuSeconds() - machineBefore];
        results[key].push(r.seconds);
        cpu[key].push(`hosts ${hostsCpu.toFixed(1)} / machine ${machineCpu.toFixed(1)} CPU-s`);
        process.stderr.write(`round ${round + 1} ${key}: ${r.seconds.toFixed(2)} s (${cpu[key].at(-1)})\n`);
      }
    }
  } finally {
    await labDown(lab);
    rmSync(work, { recursive: true, force: true });
  }
  process.stderr.write(`hosts ${hosts}, agentRuntime ${runtime}; medians (wall) and the CPU of each round:\n`);
  for (const key of Object.keys(results) as Array<keyof typeof results>) {
    process.stderr.write(`  ${key.padEnd(7)} ${median(results[key]).toFixed(2)} s   ${cpu[key].join('; ')}\n`);
  }
  const line = {
    hosts,
    fresh_apply_s: +median(results.fresh).toFixed(2),
    noop_apply_s: +median(results.noop).toFixed(2),
    drift_s: +median(results.drift).toFixed(2),
    destroy_s: +median(results.destroy).toFixed(2),
  };
  process.stdout.write(JSON.stringify(line) + '\n');
}

main().catch((err) => {
  process.stderr.write(`bench:control failed: ${(err as Error).message}\n`);
  process.exit(1);
});
