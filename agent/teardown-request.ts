// `podnet destroy` asks a running agent to tear the host down as it stops, which saves a
// second Node boot on every host: it writes the agent's main PID into the request file (see
// teardownRequestPath), then stops the unit. The agent honours a request only if it names this
// very process and was made after the process started, so a request left by a destroy that
// died half-way can never turn a later restart into a teardown (PIDs get reused).
import { readFile, rm, stat } from 'node:fs/promises';

/** When this process started (ms since the epoch): requests older than that are not for it. */
export function processStartedAt(): number {
  return Date.now() - process.uptime() * 1000;
}

export async function teardownRequested(path: string, pid: number, startedAt: number): Promise<boolean> {
  try {
    const [text, st] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    return text.trim() === String(pid) && st.mtimeMs >= startedAt;
  } catch {
    return false; // no request
  }
}

/** Done: the request goes, so destroy knows it need not run a teardown of its own. */
export function requestServed(path: string): Promise<void> {
  return rm(path, { force: true });
}
