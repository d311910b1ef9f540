// podnet-agent: runs under systemd on each host and does what flanneld's ipip backend does,
// from the desired state the shared model computes out of its config (the model's agentConfigPath).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  AGENT_STATUS_SCHEMA,
  configHashOf,
  describeUnderlay,
  desiredHostState,
  discoverUnderlay,
  findNode,
  parseAgentConfig,
  parseAgentStatus,
  resolveNetwork,
  statusPath,
  teardownRequestPath,
  type AgentStatus,
  type DatapathKind,
  type DesiredHostState,
  type Network,
  TEARDOWN_CONFIG_UNREADABLE,
} from '../src/model';
import { toDatapathHost, type Datapath } from './datapaths/datapath';
import { DATAPATH_FACTORIES } from './datapaths/registry';
import { selectDatapath } from './datapaths/select';
import { readLiveState } from './host/read-live-state';
import { ChangeWatcher } from './reconcile/change-watcher';
import { Reconciler } from './reconcile/reconciler';
import { degradedReasons } from './reconcile/degraded';
import { writeStatus } from './status';
import { removeOwnClsact, teardownHost } from './teardown';
import { Ownership } from './host/ownership';
import { otherRunningNetworks, runningNetworksMessage } from './host/other-networks';
import { processStartedAt, requestServed, teardownRequested } from './teardown-request';
import { AGENT_BUILD, AGENT_VERSION } from './version';

/**
 * The safety net: events repair within a second, this catches whatever no event reports. Each
 * full pass costs ~90 ms of CPU (a dozen ip/tc/nft runs), which 30 idle agents sharing a
 * machine feel, so it runs every 30 s rather than every 10 s.
 */
const FULL_CHECK_MS = 30_000;
const RETRY_MS = 5_000;
/** Packet counters in the status file stay this fresh without a full pass (one cheap read). */
const COUNTERS_MS = 5_000;

function log(line: string): void {
  process.stdout.write(`${new Date().toISOString()} ${line}\n`);
}

interface Loaded {
  readonly network: Network;
  /** From the declarations alone (what the agent knows before it reads the host). */
  readonly state: DesiredHostState;
  readonly configHash: string;
}

function loadConfig(path: string): Loaded {
  const text = readFileSync(path, 'utf8');
  const config = parseAgentConfig(text, path);
  const network = resolveNetwork(config.network);
  return { network, state: desiredHostState(network, config.node), configHash: configHashOf(text) };
}

/** The desired state with the underlay found on this host (throws UnderlayError, which says what to set). */
async function onThisHost(loaded: Loaded): Promise<DesiredHostState> {
  const { network, state } = loaded;
  // Only what discovery and directRouting need: an agent restart must not wait on the rest.
  const live = await readLiveState(state, ['links', 'addrs', 'routes']);
  return desiredHostState(network, state.node, discoverUnderlay(network, findNode(network, state.node), live), live.routes);
}

/** Removes what the agent created, trying every datapath's teardown (whichever made it). */
function teardownAll(state: DesiredHostState): Promise<void> {
  return teardownHost(state, DATAPATH_FACTORIES, log);
}

/**
 * A datapath switch (ebpf -> userspace by apply, say): what the previous datapath set up (tc
 * programs on the underlay and the tunnel, pins, its device) comes down before the new one
 * runs; otherwise the old programs keep carrying the traffic beside it.
 */
async function switchDatapath(state: DesiredHostState, ownership: Ownership, chosen: Datapath): Promise<void> {
  const previous = ownership.record.datapath;
  if (previous === undefined || previous === chosen.kind) return;
  log(`datapath changes from ${previous} to ${chosen.kind}: removing what ${previous} set up first`);
  const old = DATAPATH_FACTORIES.find((f) => f.kind === previous)?.create(toDatapathHost(state), log);
  await old?.teardown().catch((e: Error) => log(`teardown of the ${previous} datapath failed: ${e.message}`));
  await removeOwnClsact(state.underlay.device, ownership.record);
  await ownership.update(({ datapath: _, ...rest }) => rest);
}

async function run(configPath: string): Promise<void> {
  const startedAt = processStartedAt();
  const loaded = loadConfig(configPath);
  const { configHash } = loaded;
  let state = loaded.state;
  const file = statusPath(state.network);
  let status: AgentStatus = {
    schema: AGENT_STATUS_SCHEMA,
    version: AGENT_VERSION,
    build: AGENT_BUILD,
    network: state.network,
    node: state.node,
    pid: process.pid,
    configHash,
    state: 'starting',
    passedOver: {},
    peers: state.peers,
    repairs: 0,
    remaining: [],
  };
  // Writes are chained: several callers can publish at once (events arriving during a pass
  // share it), and each write must land whole and in order, the newest last.
  let writing: Promise<void> = Promise.resolve();
  const publish = (patch: Partial<AgentStatus>) => {
    status = { ...status, ...patch };
    const snapshot = status;
    writing = writing.then(() => writeStatus(file, snapshot)).catch((e: Error) => log(`cannot write status: ${e.message}`));
    return writing;
  };
  // SIGTERM (systemctl stop/restart) leaves the network in place: pinned BPF state and
  // kernel routes keep carrying traffic while the agent is away. Listen from the start, so a
  // stop during start-up is handled the same way.
  let stopping = false;
  const stopped = new Promise<void>((resolve) => {
    const stop = () => {
      stopping = true;
      resolve();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  log(`podnet-agent ${AGENT_VERSION} (${AGENT_BUILD}) network ${state.network} node ${state.node} pod subnet ${state.podCidr}`);

  // One network per host: refuse (and say so in the status, which apply shows) while another
  // network's agent runs here, instead of fighting it over the shared devices.
  for (let said = ''; !stopping;) {
    const others = await otherRunningNetworks(state.network);
    if (others.length === 0) break;
    const message = runningNetworksMessage(state.network, others);
    if (message !== said) log(message);
    said = message;
    await publish({ state: 'failed', error: message });
    await Promise.race([stopped, new Promise((r) => setTimeout(r, RETRY_MS))]);
  }
  if (stopping) return;

  // Find the underlay (the interface holding this node's address, its MTU); if the host cannot
  // carry the tunnel as declared, say why and look again (an address may be added later).
  for (let found = false; !found && !stopping;) {
    try {
      state = await onThisHost(loaded);
      found = true;
      log(`underlay ${describeUnderlay(state.underlay)}`);
    } catch (err) {
      log((err as Error).message);
      await publish({ state: 'failed', error: (err as Error).message });
      await Promise.race([stopped, new Promise((r) => setTimeout(r, RETRY_MS))]);
    }
  }
  if (stopping) return;
  await publish({ underlay: state.underlay, peers: state.peers });

  // Choose a datapath; if none works yet, say why and try again (a module may be loaded later).
  let datapath: Datapath | undefined;
  let passedOver: Partial<Record<DatapathKind, string>> = {};
  while (!datapath && !stopping) {
    try {
      const selection = await selectDatapath(state.datapath, toDatapathHost(state), DATAPATH_FACTORIES, log);
      datapath = selection.datapath;
      passedOver = { ...selection.passedOver };
    } catch (err) {
      log((err as Error).message);
      await publish({ state: 'failed', error: (err as Error).message });
      await Promise.race([stopped, new Promise((r) => setTimeout(r, RETRY_MS))]);
    }
  }
  if (!datapath) return;
  log(
    `datapath ${datapath.kind}${
      Object.keys(passedOver).length
        ? ` (passed over: ${Object.entries(passedOver)
            .map(([k, v]) => `${k}: ${v}`)
            .join('; ')})`
        : ''
    }`,
  );
  const chosen = datapath;
  const ownership = await Ownership.load(state.network);
  await switchDatapath(state, ownership, chosen);
  const reconciler = new Reconciler(state, chosen, log, { ownership });

  // A repair delayed by backoff needs a pass when its delay ends, event or not.
  let retryTimer: NodeJS.Timeout | undefined;
  const scheduleRetry = (at: number | undefined) => {
    if (retryTimer) clearTimeout(retryTimer);
    retryTimer = undefined;
    if (at === undefined || stopping) return;
    retryTimer = setTimeout(() => void reconcile('backoff'), Math.max(0, at - Date.now()) + 10);
    retryTimer.unref();
  };
  const reconcile = async (why: string) => {
    try {
      // Netlink, nftables and file events (and backoff retries) need only a diff; tc events
      // (our filters?), start and the periodic check re-assert the datapath too.
      const light = why.split('+').every((s) => s === 'ip' || s === 'nft' || s === 'file' || s === 'iptables' || s === 'backoff');
      const outcome = await reconciler.reconcile(light ? 'light' : 'full', why);
      const delayed = reconciler.delayed();
      const reasons = degradedReasons(outcome, delayed);
      await publish({
        error: undefined,
        state: reasons.length === 0 ? 'converged' : 'degraded',
        degradedReasons: reasons.length > 0 ? reasons : undefined,
        backoff: delayed.length > 0 ? delayed.map((d) => ({ ...d, retryAt: new Date(d.retryAt).toISOString() })) : undefined,
        datapath: chosen.kind,
        passedOver,
        repairs: reconciler.repairs,
        lastReconcile: new Date().toISOString(),
        remaining: outcome.remaining,
        counters: await chosen.counters().catch(() => status.counters ?? { peers: [], dropped: 0 }),
      });
      scheduleRetry(reconciler.nextRetry());
    } catch (err) {
      log(`reconcile failed (${why}): ${(err as Error).message}`);
      await publish({ state: 'degraded', error: (err as Error).message });
    }
  };

  // A pass may have made a watched directory again (someone removed /etc/cni/net.d): watch the new one.
  const watcher: ChangeWatcher = new ChangeWatcher((sources) => void reconcile([...sources].join('+')).then(() => watcher.rearm()));
  // Watching before the first pass: what happens during it (NetworkManager, told by the file it
  // writes to leave the pods' veths alone, sets them down as it lets go) wakes a pass of its own.
  watcher.start([state.subnetEnv.path, state.cni.path]);
  await reconcile('start');
  watcher.rearm();
  const timer = setInterval(() => void reconcile('periodic').then(() => watcher.rearm()), FULL_CHECK_MS);
  // The next read is timed from the end of the last one, never on a fixed beat: on a slow host
  // (an emulated guest, a loaded machine) a read can take longer than COUNTERS_MS, and reads on
  // a beat then pile up and run side by side, each one slower for the others.
  let countersTimer: NodeJS.Timeout | undefined;
  const readCounters = (): void => {
    countersTimer = setTimeout(() => {
      void chosen
        .counters()
        .then(
          (counters) => {
            // A read still running at SIGTERM must not rewrite the status once the agent has stopped.
            if (!stopping && JSON.stringify(counters) !== JSON.stringify(status.counters)) void publish({ counters });
          },
          () => undefined,
        )
        .then(() => {
          if (!stopping) readCounters();
        });
    }, COUNTERS_MS);
  };
  readCounters();

  await stopped;
  clearInterval(timer);
  clearTimeout(countersTimer);
  if (retryTimer) clearTimeout(retryTimer);
  watcher.stop();
  // Never stop half-way through a repair (say, between deleting and recreating the device).
  await reconciler.settle();
  await chosen.close();
  await writing;
  const request = teardownRequestPath(state.network);
  if (await teardownRequested(request, process.pid, startedAt)) {
    log('stopping for podnet destroy: tearing the network down');
    // On failure the request stays, and destroy runs `podnet-agent teardown`, which reports the error.
    await teardownAll(state).then(
      () => requestServed(request),
      (e: Error) => log(`teardown on stop failed: ${e.message}`),
    );
    return;
  }
  log('stopped; network left in place');
}

/** Exit status: 0, or TEARDOWN_CONFIG_UNREADABLE (said on stderr) when the config cannot be read. */
async function teardown(configPath: string): Promise<number> {
  let loaded: Loaded;
  try {
    loaded = loadConfig(configPath);
  } catch (e) {
    process.stderr.write(`podnet-agent: cannot read ${configPath}: ${(e as Error).message}\n`);
    return TEARDOWN_CONFIG_UNREADABLE;
  }
  // The underlay as found now; where it cannot be found any more, the declared (or eth0) one.
  await teardownAll(await onThisHost(loaded).catch(() => loaded.state));
  return 0;
}

function printStatus(configPath: string | undefined, network: string | undefined, json: boolean): number {
  const net = network ?? (configPath ? parseAgentConfig(readFileSync(configPath, 'utf8'), configPath).network.name : undefined);
  if (!net) throw new Error('status needs --network NAME or --config FILE');
  let text: string;
  try {
    text = readFileSync(statusPath(net), 'utf8');
  } catch {
    process.stderr.write(`no status for network ${net} (is the agent running?)\n`);
    return 3;
  }
  if (json) {
    process.stdout.write(text);
    return 0;
  }
  const parsed = parseAgentStatus(text);
  if (!parsed.ok) {
    process.stderr.write(`the status file ${statusPath(net)} cannot be read: ${parsed.reason}\n`);
    return 3;
  }
  const s = parsed.status;
  const lines = [
    `network ${s.network} node ${s.node}: ${s.state}`,
    `agent ${s.version} build ${s.build} pid ${s.pid} config ${s.configHash}`,
    ...(s.underlay ? [`underlay ${describeUnderlay(s.underlay)}`] : []),
    `datapath ${s.datapath ?? 'none'}${Object.entries(s.passedOver)
      .map(([k, v]) => `\n  passed over ${k}: ${v}`)
      .join('')}`,
    `peers: ${s.peers.map((p) => `${p.node} ${p.address} ${p.podCidr}${p.tunnelled ? '' : ' (direct)'}`).join(', ') || 'none'}`,
    `repairs ${s.repairs}, last reconcile ${s.lastReconcile ?? 'never'}`,
    ...(s.degradedReasons ?? []).map((r) => `degraded: ${r}`),
    ...(s.backoff ?? []).map(
      (b) => `backoff: ${b.key} repaired ${b.repairs} times in ${b.windowS} s (${b.sources.join(', ')}); next repair ${b.retryAt}`,
    ),
    ...(s.counters
      ? [
          `dropped ${s.counters.dropped}${
            s.counters.drops
              ? ` (${
                  Object.entries(s.counters.drops)
                    .filter(([, n]) => n > 0)
                    .map(([r, n]) => `${r} ${n}`)
                    .join(', ') || 'none'
                })`
              : ''
          }`,
          ...s.counters.peers.map((c) => `  ${c.node}: tx ${c.txPackets} pkts ${c.txBytes} B, rx ${c.rxPackets} pkts ${c.rxBytes} B`),
        ]
      : []),
    ...(s.error ? [`error: ${s.error}`] : []),
  ];
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { config: { type: 'string' }, network: { type: 'string' }, json: { type: 'boolean' }, version: { type: 'boolean' } },
  });
  if (values.version) {
    process.stdout.write(`podnet-agent ${AGENT_VERSION} ${AGENT_BUILD}\n`);
    return 0;
  }
  const [command] = positionals;
  switch (command) {
    case 'run':
      if (!values.config) throw new Error('run needs --config FILE');
      await run(values.config);
      return 0;
    case 'teardown':
      if (!values.config) throw new Error('teardown needs --config FILE');
      return teardown(values.config);
    case 'status':
      return printStatus(values.config, values.network, values.json ?? false);
    default:
      process.stderr.write('usage: podnet-agent run|teardown --config FILE | status [--network NAME|--config FILE] [--json] | --version\n');
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`podnet-agent: ${err.message}\n`);
    process.exit(1);
  },
);
