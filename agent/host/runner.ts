// How the agent runs programs (ip, nft, podnet-bpf, bridge, mount). Injectable so the
// pure parts can be unit-tested without root.
import { execFile } from 'node:child_process';
import { constants } from 'node:os';
import type { CommandResult } from '../../src/host/command-result';

export type Runner = (file: string, args: readonly string[], opts?: { input?: string; timeoutMs?: number }) => Promise<CommandResult>;

/** child_process.execFile with optional stdin; never rejects on a non-zero exit. */
export const execRunner: Runner = (file, args, opts = {}) =>
  new Promise((resolve) => {
    const child = execFile(
      file,
      [...args],
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: NodeJS.Signals | null }) | null;
        // A signal (the timeout's kill included) is 128+N, as a shell reports it: a command that
        // ran and was killed must not read as 127, "could not be started".
        const signalled = e?.signal ? 128 + (constants.signals[e.signal] ?? 0) : undefined;
        const code = !e ? 0 : typeof e.code === 'number' ? e.code : (signalled ?? 127);
        resolve({ code, stdout: stdout ?? '', stderr: stderr || (e && typeof e.code !== 'number' ? e.message : '') || '' });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });

export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: CommandResult,
  ) {
    super(`${argv.join(' ')} failed (exit ${result.code}): ${(result.stderr || result.stdout).trim()}`);
    this.name = 'CommandError';
  }
}

/** The one way to say "this must succeed": runs through `run`, throws CommandError on a non-zero exit, returns stdout. */
export async function mustRun(
  run: Runner,
  file: string,
  args: readonly string[],
  opts?: { input?: string; timeoutMs?: number },
): Promise<string> {
  const r = await run(file, args, opts);
  if (r.code !== 0) throw new CommandError([file, ...args], r);
  return r.stdout;
}
