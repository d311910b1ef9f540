// Running host tools (ip, nft, sysctl) from the agent's core, on top of the shared runner.
import { CommandError, execRunner, type CmdResult } from './runner';

export type CommandResult = CmdResult;
export { CommandError };

export function runCommand(file: string, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
  return execRunner(file, args, { timeoutMs: 10_000, ...opts });
}

/** Runs and throws CommandError on a non-zero exit; returns stdout. */
export async function mustRun(file: string, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const result = await runCommand(file, args, opts);
  if (result.code !== 0) throw new CommandError([file, ...args], result);
  return result.stdout;
}

/** `ip -batch -`: many changes in one process; with -force it goes on past a failing line. */
export async function ipBatch(lines: readonly string[]): Promise<CommandResult> {
  if (lines.length === 0) return { code: 0, stdout: '', stderr: '' };
  return runCommand('ip', ['-force', '-batch', '-'], { input: lines.join('\n') + '\n' });
}
