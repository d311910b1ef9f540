// `podnet-agent teardown`: removes exactly what the agent created — its routes (by proto
// number), the tunnel and whatever its datapath made, the cni0 bridge, podnet's nftables
// table, subnet.env, the CNI conflist — and puts ip_forward back as it found it.
import { readFile, rm } from 'node:fs/promises';
import { IP_ROUTES_ARGV, parseRoutes } from '../src/host/live-state';
import { isPodnetRoute } from '../src/planner/host-diff';
import { forwardAcceptRules, ipForwardMemoPath, IPTABLES_BACKENDS, IPTABLES_COMMANDS, nftTableName, ROUTE_PROTOCOL, savedRuleLine, tempPathFor, unmanagedConfigs, type DesiredHostState } from '../src/model';
import { readLiveState } from './host/read-live-state';
import { ipBatch, runCommand } from './host/command';
import { mustRun } from './host/runner';
import { toDatapathHost, type DatapathFactory } from './datapaths/datapath';
import { reloadManager } from './reconcile/reconciler';

/** Tears down with every one of `factories`' datapaths (whichever made the network), each bound to this host. */
export async function teardownHost(state: DesiredHostState, factories: readonly DatapathFactory[], log: (l: string) => void): Promise<void> {
  const routes = parseRoutes(await mustRun(runCommand, IP_ROUTES_ARGV[0], IP_ROUTES_ARGV.slice(1)));
  const own = routes.filter((r) => isPodnetRoute(r, state.clusterCidr));
  await ipBatch(runCommand, own.map((r) => `route del ${r.destination} proto ${ROUTE_PROTOCOL}`));
  log(`removed ${own.length} podnet routes`);
  // One datapath failing to clean up (say, a loader that cannot run here) must not keep the
  // rest of the host from being cleaned: collect the errors and report them at the end.
  const failures: string[] = [];
  const host = toDatapathHost(state);
  for (const dp of factories.map((f) => f.create(host, log))) {
    await dp.teardown().catch((e: Error) => {
      failures.push(`${dp.kind}: ${e.message}`);
      log(`teardown of the ${dp.kind} datapath failed: ${e.message}`);
    });
  }
  await runCommand('ip', ['link', 'del', 'dev', state.tunnel.device]);
  await runCommand('ip', ['link', 'del', 'dev', state.bridge.device]);
  await runCommand('nft', ['delete', 'table', 'ip', nftTableName(state.network)]);
  await removeForwardRules(state, log);
  for (const c of unmanagedConfigs(state.network)) {
    if (await rm(c.path).then(() => true, () => false)) await reloadManager(c.manager);
  }
  await rm(state.subnetEnv.path, { force: true });
  // Only podnet's own conflist: the directory (and whatever else is in it) is destroy's to judge.
  await rm(state.cni.path, { force: true });
  // and a temp file a crash between write and rename left (destroy's script cannot know cniConfDir).
  await rm(tempPathFor(state.cni.path), { force: true });
  try {
    const before = (await readFile(ipForwardMemoPath(state.network), 'utf8')).trim();
    if (before === '0' || before === '1') await runCommand('sysctl', ['-qw', `net.ipv4.ip_forward=${before}`]);
    await rm(ipForwardMemoPath(state.network), { force: true });
  } catch {
    // No memo: podnet never changed ip_forward on this host.
  }
  if (failures.length > 0) throw new Error(`teardown finished with errors: ${failures.join('; ')}`);
  log('teardown complete');
}

/** Deletes podnet's accept rules from each iptables filter FORWARD chain that holds them, and nothing else. */
async function removeForwardRules(state: DesiredHostState, log: (l: string) => void): Promise<void> {
  const chains = (await readLiveState(state)).iptablesForward ?? {};
  for (const backend of IPTABLES_BACKENDS) {
    const rules = chains[backend]?.rules ?? [];
    for (const args of forwardAcceptRules(state.network, state.clusterCidr)) {
      // A rule inserted twice (two agents racing) is listed twice: delete every copy.
      const copies = rules.filter((r) => r === savedRuleLine(args)).length;
      for (let i = 0; i < copies; i++) await runCommand(IPTABLES_COMMANDS[backend].iptables, ['-w', '-D', 'FORWARD', ...args]);
      if (copies) log(`removed podnet's FORWARD rule ${args.slice(0, 2).join(' ')} from ${IPTABLES_COMMANDS[backend].iptables}`);
    }
  }
}
