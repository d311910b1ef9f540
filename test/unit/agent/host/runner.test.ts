// The agent's runner reports how a program ended the way a shell does, so callers can tell
// "could not start" (127) from "ran and was killed" (128+N), e.g. by the runner's own timeout.
import { constants } from 'node:os';
import { execRunner, mustRun, CommandError } from '../../../../agent/host/runner';

describe('execRunner', () => {
  it('passes stdin and returns stdout and a zero exit', async () => {
    expect(await execRunner('cat', [], { input: 'hello' })).toEqual({ code: 0, stdout: 'hello', stderr: '' });
  });
  it('returns a non-zero exit as it is', async () => {
    expect((await execRunner('sh', ['-c', 'echo oops >&2; exit 3'])).code).toBe(3);
  });
  it('says 127 only for a program that could not start', async () => {
    expect((await execRunner('/nonexistent/podnet-test-binary', [])).code).toBe(127);
  });
  it('says 128+SIGTERM for a program its timeout killed', async () => {
    expect((await execRunner('sleep', ['5'], { timeoutMs: 100 })).code).toBe(128 + constants.signals.SIGTERM);
  });
  it('mustRun throws a CommandError naming the command and the exit', async () => {
    await expect(mustRun(execRunner, 'sh', ['-c', 'exit 4'])).rejects.toThrow(CommandError);
    await expect(mustRun(execRunner, 'sh', ['-c', 'exit 4'])).rejects.toThrow('sh -c exit 4 failed (exit 4)');
  });
});
