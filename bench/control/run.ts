// npm run bench:control -- --hosts N
// Control-plane timings on N lab hosts: fresh apply, no-op apply, drift, destroy, each
// measured end to end through the real CLI (process start and the lab re-exec included).
// Ends with one JSON line.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { referenceApp } from '../../examples/reference-network';
import { labDown, labUp, readLab } from '../../src/lab';
import type { NodeSpec } from '../../src/model';

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

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { hosts: { type: 'string', default: '3' }, rounds: { type: 'string', default: '3' }, lab: { type: 'string', default: 'ctlbench' } } });
  const hosts = Number(values.hosts);
  const rounds = Number(values.rounds);
  const lab = values.lab!;
  const names = ['master', ...Array.from({ length: hosts - 1 }, (_, i) => `node${i + 1}`)];
  const nodes: NodeSpec[] = names.map((name, i) => ({ name, address: `192.168.0.${80 + i}` }));
  const work = mkdtempSync(join(tmpdir(), 'podnet-bench-'));
  const results = { fresh: [] as number[], noop: [] as number[], drift: [] as number[], destroy: [] as number[] };
  try {
    if (readLab(lab)) await labDown(lab);
    const t0 = Date.now();
    await labUp({ name: lab, hosts });
    process.stderr.write(`lab ${lab}: ${hosts} hosts up in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    const outdir = join(work, 'out');
    referenceApp({ outdir, lab, nodes }).synth();
    const manifest = join(outdir, 'stacks', 'reference', 'assets', 'podnet-cluster', 'manifest.json');
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
        const r = await podnet(args);
        if (r.code !== want) throw new Error(`${args[0]} exited ${r.code}:\n${r.out}`);
        results[key].push(r.seconds);
        process.stderr.write(`round ${round + 1} ${key}: ${r.seconds.toFixed(2)} s\n`);
      }
    }
  } finally {
    await labDown(lab);
    rmSync(work, { recursive: true, force: true });
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
