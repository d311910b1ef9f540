// One podnet network per host: flannel.ipip, cni0, /run/flannel/subnet.env and proto-152
// routes exist once per host, so a second network's agent on the same host would fight the
// first over them (rewriting subnet.env back and forth, both reporting converged) and its
// destroy would tear the first one's devices down. An agent finds the others by their status
// files, trusting only those whose process is still that network's agent (a status file left
// by an agent stopped with `systemctl disable --now` names a pid the kernel may have reused).
import { readdir, readFile } from 'node:fs/promises';
import { AGENT_BUNDLE_PATH, agentConfigPath, parseAgentStatus, RUN_DIR, statusPath } from '../../src/model';
import { sharedDevicesMessage } from '../../src/planner/stale-state';

export interface RunningNetwork {
  readonly network: string;
  readonly pid: number;
}

/** Other podnet networks whose agent runs on this host now (not `network`). */
export async function otherRunningNetworks(network: string): Promise<RunningNetwork[]> {
  const names = await readdir(RUN_DIR).catch(() => [] as string[]);
  const out: RunningNetwork[] = [];
  for (const name of names) {
    const m = /^(.+)\.status\.json$/.exec(name);
    if (!m || m[1] === network || statusPath(m[1]!) !== `${RUN_DIR}/${name}`) continue;
    const parsed = parseAgentStatus(await readFile(`${RUN_DIR}/${name}`, 'utf8').catch(() => ''));
    if (!parsed.ok || parsed.status.pid === process.pid) continue;
    const cmdline = await readFile(`/proc/${parsed.status.pid}/cmdline`, 'utf8').catch(() => '');
    if (isAgentOf(cmdline, parsed.status.network)) out.push({ network: parsed.status.network, pid: parsed.status.pid });
  }
  return out;
}

/**
 * Whether a process's `/proc/PID/cmdline` (arguments separated by NULs) is `network`'s agent:
 * podnet's agent bundle run with that network's config, as its unit starts it.
 */
export function isAgentOf(cmdline: string, network: string): boolean {
  const args = cmdline.split('\0');
  return args.includes(AGENT_BUNDLE_PATH) && args.includes(agentConfigPath(network));
}

/** Why this agent may not run its network here, naming the ones that do (planner/stale-state.ts's text). */
export function runningNetworksMessage(network: string, others: readonly RunningNetwork[]): string {
  return sharedDevicesMessage(
    network,
    others.map((o) => ({ network: o.network, evidence: `agent pid ${o.pid}` })),
  );
}
