// Running host tools (ip, nft, sysctl files) from the agent. The only place the agent
// spawns processes, so every call has a timeout and failures carry the tool's stderr.
import { spawn } from 'node:child_process';

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(readonly command: string, readonly result: CommandResult) {
    super(`${command} failed (exit ${result.code}): ${result.stderr.trim() || result.stdout.trim()}`);
  }
}

export function runCommand(file: string, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 10_000);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs and throws CommandError on a non-zero exit. */
export async function mustRun(file: string, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const result = await runCommand(file, args, opts);
  if (result.code !== 0) throw new CommandError([file, ...args].join(' '), result);
  return result.stdout;
}

/** `ip -batch -`: many changes in one process; with -force it goes on past a failing line. */
export async function ipBatch(lines: readonly string[]): Promise<CommandResult> {
  if (lines.length === 0) return { code: 0, stdout: '', stderr: '' };
  return runCommand('ip', ['-force', '-batch', '-'], { input: lines.join('\n') + '\n' });
}
