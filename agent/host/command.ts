// Running host tools (ip, nft, sysctl) from the agent's core, on top of the shared runner.
import type { CommandResult } from '../../src/host/command-result';
import { execRunner, type Runner } from './runner';

/** The agent core's Runner: execFile with a 10 s default timeout (host tools answer in ms). */
export const runCommand: Runner = (file, args, opts = {}) => execRunner(file, args, { timeoutMs: 10_000, ...opts });

/** `ip -batch -`: many changes in one process; with -force it goes on past a failing line. */
export async function ipBatch(run: Runner, lines: readonly string[]): Promise<CommandResult> {
  if (lines.length === 0) return { code: 0, stdout: '', stderr: '' };
  return run('ip', ['-force', '-batch', '-'], { input: lines.join('\n') + '\n' });
}
