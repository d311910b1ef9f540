// Running the real podnet CLI (the built bundle) against a lab, as a user or terraform would.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import type { CommandResult } from '../../src/host/command-result';

export const projectRoot = join(__dirname, '..', '..');
export const podnetBin = join(projectRoot, 'bin', 'podnet');

export function runPodnet(
  args: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return runShell(process.execPath, [podnetBin, ...args], opts);
}

export function runShell(
  file: string,
  args: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      [...args],
      { cwd: opts.cwd ?? projectRoot, env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 32 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}
