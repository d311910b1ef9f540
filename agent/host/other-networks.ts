// One podnet network per host: flannel.ipip, cni0, /run/flannel/subnet.env and proto-152
// routes exist once per host, so a second network's agent on the same host would fight the
// first over them (rewriting subnet.env back and forth, both reporting converged) and its
// destroy would tear the first one's devices down. An agent finds the others by their status
// files, trusting only those whose process still runs.
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { parseAgentStatus, RUN_DIR, statusPath } from '../../src/model';

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
    if (parsed.ok && parsed.status.pid !== process.pid && existsSync(`/proc/${parsed.status.pid}`))
      out.push({ network: parsed.status.network, pid: parsed.status.pid });
  }
  return out;
}

/** Why this agent may not run its network here, naming the one that does. */
export function sharedDevicesMessage(network: string, others: readonly RunningNetwork[]): string {
  const names = others.map((o) => `'${o.network}' (agent pid ${o.pid})`).join(', ');
  return `this host already runs podnet network ${names}: flannel.ipip, cni0 and /run/flannel/subnet.env exist once per host, so network '${network}' cannot run beside it; destroy ${others.length > 1 ? 'those' : `'${others[0]!.network}'`} on this host first (a rename is a destroy of the old network, then an apply of the new)`;
}
