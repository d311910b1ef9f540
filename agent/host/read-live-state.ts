// Reads this host's live state for the reconciler: the shared list of reads (src/host/live-state.ts),
// run locally. The engine runs the same list over SSH, so the agent and drift see the same state.
import { readFile } from 'node:fs/promises';
import {
  AGENT_READ_NAMES,
  liveStateReads,
  type LiveReadName,
  parseLiveState,
  type LiveHostState,
  type LiveRead,
} from '../../src/host/live-state';
import type { DesiredHostState } from '../../src/model';
import { runCommand } from './command';
import { mustRun } from './runner';

async function runRead(read: LiveRead): Promise<string | undefined> {
  if (read.source === 'file') return readFile(read.path, 'utf8').catch(() => undefined);
  const [file, ...args] = read.argv;
  if (read.required) return mustRun(runCommand, file, args);
  const r = await runCommand(file, args);
  return r.code === 0 ? r.stdout : undefined;
}

/** `names`: only these reads (the rest parse as absent), e.g. the three underlay discovery needs. */
export async function readLiveState(
  state: Pick<DesiredHostState, 'network' | 'cni'>,
  names: readonly LiveReadName[] = AGENT_READ_NAMES,
): Promise<LiveHostState> {
  const reads = liveStateReads(state.network, state.cni);
  const outputs = await Promise.all(names.map((name) => runRead(reads[name])));
  return parseLiveState(Object.fromEntries(names.map((name, i) => [name, outputs[i]])));
}
