// Helpers for the eBPF datapath's root tests: the native build, and a skip reason.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describeUnless } from './lab-support';

export const REPO = join(__dirname, '..', '..');
export const LOADER = join(REPO, 'dist', 'agent', 'podnet-bpf');
export const OBJECT = join(REPO, 'dist', 'agent', 'podnet-ipip.bpf.o');

/** Why the kernel-level eBPF tests cannot run here, or undefined. */
export function ebpfUnavailableReason(): string | undefined {
  if (process.env.PODNET_SKIP_LAB_TESTS) return `PODNET_SKIP_LAB_TESTS is set (${process.env.PODNET_SKIP_LAB_TESTS})`;
  if (process.platform !== 'linux') return 'needs Linux';
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'needs root (network namespaces, bpf(), bpffs mounts)';
  return undefined;
}

/** Builds the BPF object and loader if `npm run build` has not (fails loudly without clang/libbpf). */
export function ensureNativeBuilt(): void {
  if (existsSync(LOADER) && existsSync(OBJECT)) return;
  execFileSync('bash', [join(REPO, 'scripts', 'build-native.sh')], { cwd: REPO, stdio: 'inherit' });
}

export function describeRoot(title: string, body: () => void): void {
  describeUnless(ebpfUnavailableReason(), 'ebpf', title, body);
}
