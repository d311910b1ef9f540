// Small helpers for the datapath benchmark: the lab it owns, commands inside its hosts, the real
// podnet CLI, statistics.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { labExec, type CommandResult } from '../../src/lab';

/**
 * The benchmark's own lab (`dpbench`, `dpbench-vm` with --vm, or --lab NAME); nothing here ever
 * names another. Set once by run.ts before the lab comes up.
 */
let lab = 'dpbench';
/** Whether the two hosts are VM guests (qemu, Debian's stock kernel): slower hosts, longer waits. */
let vmHosts = false;
export const benchLab = (): string => lab;
export const onVmHosts = (): boolean => vmHosts;
export function configureBench(o: { lab: string; vm: boolean }): void {
  lab = o.lab;
  vmHosts = o.vm;
}
export const PROJECT_ROOT = join(__dirname, '..', '..');
export const OUT_DIR = join(PROJECT_ROOT, 'bench', 'out');

/** The two hosts the traffic crosses: iperf3 client in a pod on A, server in a pod on B. */
export const HOST_A = { name: 'master', address: '192.168.0.80', index: 0 } as const;
export const HOST_B = { name: 'node1', address: '192.168.0.81', index: 1 } as const;
export type BenchHost = typeof HOST_A | typeof HOST_B;
export const HOSTS: readonly BenchHost[] = [HOST_A, HOST_B];
/** The pod on each host (the same name on both). */
export const POD = 'bench';
export const CLUSTER_CIDR = '10.244.0.0/16';
/** Pod subnets as podnet allocates them for master/node1 (the lowest free /24s). */
export const podSubnetOf = (h: BenchHost): string => `10.244.${h.index}.0/24`;

export const log = (line: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A wait stretched for emulated guests: every command there is an SSH login and emulated execs. */
const scaled = (ms: number): number => (vmHosts ? ms * 4 : ms);

/** A shell script inside a host (all its namespaces); throws with its stderr on failure. */
export async function hostSh(host: string, script: string, timeoutMs = 30_000): Promise<string> {
  const r = await labExec(lab, host, ['sh', '-c', script], { timeoutMs: scaled(timeoutMs) });
  if (r.code !== 0) throw new Error(`${host}: '${oneLine(script)}' failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** Like hostSh, but never throws (for teardown steps that may find nothing to remove). */
export async function hostShQuiet(host: string, script: string, timeoutMs = 30_000): Promise<CommandResult> {
  return labExec(lab, host, ['sh', '-c', script], { timeoutMs: scaled(timeoutMs) }).catch((e: unknown) => ({
    code: 1,
    stdout: '',
    stderr: String(e),
  }));
}

function oneLine(s: string): string {
  const l = s.replace(/\s+/g, ' ').trim();
  return l.length > 100 ? `${l.slice(0, 100)}...` : l;
}

/** The real CLI (the built bundle in dist/, through bin/podnet), as a user would run it. */
export function runPodnet(args: readonly string[], timeoutMs = 120_000): Promise<CommandResult> {
  // Emulated guests: the engine's host waits stretched as the VM lab test does, and ours with them.
  if (vmHosts) timeoutMs *= 5;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'podnet'), ...args], {
      cwd: PROJECT_ROOT,
      env: vmHosts ? { ...process.env, PODNET_HOST_TIMEOUT_SCALE: '6' } : process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${timeoutMs} ms)`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: stderr + err.message });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

export function median(xs: readonly number[]): number | null {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

export const round = (x: number | null | undefined, digits = 2): number | null =>
  x === null || x === undefined || !Number.isFinite(x) ? null : Number(x.toFixed(digits));
