// `podnet-agent teardown`: removes exactly what the agent created and puts back what it
// changed, as its ownership record (host/ownership.ts) says: its routes (by proto number), the
// tunnel and whatever its datapath made, the cni0 bridge if podnet created it (a bridge it
// found keeps, minus the address podnet gave it), a clsact qdisc podnet's datapath added once
// it is empty, podnet's nftables table and FORWARD rules, its firewalld binding, subnet.env, the CNI conflist, and ip_forward as it was
// found. Without a record (a host set up by an older agent) it goes by names, as that agent did.
import { readFile, rm } from 'node:fs/promises';
import { IP_ROUTES_ARGV, parseRoutes } from '../src/host/live-state';
import { isPodnetRoute } from '../src/planner/host-diff';
import {
  conntrackBypassTableName,
  FIREWALLD_ZONE,
  firewalldProtocolCall,
  firewalldSourceCall,
  forwardAcceptRules,
  ipForwardMemoPath,
  IPTABLES_BACKENDS,
  IPTABLES_COMMANDS,
  nftTableName,
  ROUTE_PROTOCOL,
  savedRuleLine,
  tempPathFor,
  unmanagedConfigs,
  type DesiredHostState,
} from '../src/model';
import { readLiveState } from './host/read-live-state';
import { ipBatch, runCommand } from './host/command';
import { mustRun } from './host/runner';
import { toDatapathHost, type DatapathFactory } from './datapaths/datapath';
import { reloadManager } from './reconcile/reconciler';
import { readOwnership, removeOwnership, type OwnershipRecord } from './host/ownership';
import { otherRunningNetworks } from './host/other-networks';

/** `ip` and `sysctl` steps that undo what `record` says podnet did to links and sysctls (pure). */
export function undoSteps(
  record: OwnershipRecord | undefined,
  state: DesiredHostState,
): { readonly ipBatch: string[]; readonly sysctls: string[] } {
  if (!record) return { ipBatch: [`link del ${state.bridge.device}`], sysctls: [] };
  return {
    ipBatch: [
      ...record.createdLinks.map((l) => `link del ${l}`),
      ...record.adoptedLinks.flatMap((a) => a.addedAddresses.map((cidr) => `addr del ${cidr} dev ${a.name}`)),
    ],
    sysctls: Object.entries(record.sysctls).map(([k, v]) => `${k}=${v}`),
  };
}

/**
 * Removes the clsact qdisc from `device` once no filter is left on it, unless it was there
 * before podnet (the record's foundClsact). A clsact still holding someone's filters stays.
 */
export async function removeOwnClsact(device: string, record: OwnershipRecord | undefined): Promise<void> {
  if (record?.foundClsact?.includes(device)) return;
  const qdiscs = await runCommand('tc', ['qdisc', 'show', 'dev', device]);
  if (qdiscs.code !== 0 || !/\bclsact\b/.test(qdiscs.stdout)) return;
  for (const direction of ['ingress', 'egress']) {
    const filters = await runCommand('tc', ['filter', 'show', 'dev', device, direction]);
    if (filters.code !== 0 || filters.stdout.trim() !== '') return;
  }
  await runCommand('tc', ['qdisc', 'del', 'dev', device, 'clsact']);
}

/** Tears down with every one of `factories`' datapaths (whichever made the network), each bound to this host. */
export async function teardownHost(
  state: DesiredHostState,
  factories: readonly DatapathFactory[],
  log: (l: string) => void,
): Promise<void> {
  const record = await readOwnership(state.network);
  const others = await otherRunningNetworks(state.network);
  if (others.length > 0 && !record) {
    // This network never ran here (its agent refused: another network holds the shared
    // devices): remove only what carries its own name, and leave the other network alone.
    await runCommand('nft', ['delete', 'table', 'ip', nftTableName(state.network)]);
    await removeForwardRules(state, log);
    await removeNamedFiles(state);
    log(
      `left ${state.tunnel.device}, ${state.bridge.device}, routes and ${state.subnetEnv.path} alone: they are network ${others.map((o) => `'${o.network}'`).join(', ')}'s`,
    );
    return;
  }
  const routes = parseRoutes(await mustRun(runCommand, IP_ROUTES_ARGV[0], IP_ROUTES_ARGV.slice(1)));
  const own = routes.filter((r) => isPodnetRoute(r, state.clusterCidr));
  await ipBatch(
    runCommand,
    own.map((r) => `route del ${r.destination} proto ${ROUTE_PROTOCOL}`),
  );
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
  await removeOwnClsact(state.underlay.device, record);
  await runCommand('ip', ['link', 'del', 'dev', state.tunnel.device]);
  const undo = undoSteps(record, state);
  await ipBatch(runCommand, undo.ipBatch);
  if (record?.adoptedLinks.length) log(`kept ${record.adoptedLinks.map((a) => a.name).join(', ')}: there before podnet`);
  await runCommand('nft', ['delete', 'table', 'ip', nftTableName(state.network)]);
  await runCommand('nft', ['delete', 'table', 'ip', conntrackBypassTableName(state.network)]);
  await removeForwardRules(state, log);
  const unbound = await unbindFirewalld(state, record, log);
  if (unbound) failures.push(unbound);
  await removeNamedFiles(state);
  await rm(state.subnetEnv.path, { force: true });
  for (const sysctl of undo.sysctls) await runCommand('sysctl', ['-qw', sysctl]);
  try {
    // An older agent's note of the ip_forward value it found (the record holds it now).
    const before = (await readFile(ipForwardMemoPath(state.network), 'utf8')).trim();
    if (!record && (before === '0' || before === '1')) await runCommand('sysctl', ['-qw', `net.ipv4.ip_forward=${before}`]);
    await rm(ipForwardMemoPath(state.network), { force: true });
  } catch {
    // No note.
  }
  if (failures.length > 0) throw new Error(`teardown finished with errors: ${failures.join('; ')}`);
  await removeOwnership(state.network);
  log('teardown complete');
}

/** The network's files that carry its name: network managers' unmanaged files, its CNI conflist. */
async function removeNamedFiles(state: DesiredHostState): Promise<void> {
  for (const c of unmanagedConfigs(state.network)) {
    if (
      await rm(c.path).then(
        () => true,
        () => false,
      )
    )
      await reloadManager(c.manager);
  }
  // Only podnet's own conflist: the directory (and whatever else is in it) is destroy's to judge.
  await rm(state.cni.path, { force: true });
  // and a temp file a crash between write and rename left (destroy's script cannot know cniConfDir).
  await rm(tempPathFor(state.cni.path), { force: true });
}

/**
 * Unbinds the cluster CIDR from firewalld's trusted zone and removes protocol 4 from the zones
 * where podnet's record says podnet put them and they are still there; what someone else made
 * stays. Returns the error, if any.
 */
async function unbindFirewalld(
  state: DesiredHostState,
  record: OwnershipRecord | undefined,
  log: (l: string) => void,
): Promise<string | undefined> {
  const fw = (await readLiveState(state)).firewalld;
  if (!fw || !record) return undefined;
  const calls = [
    ...(record.firewalldSources?.includes(state.clusterCidr) && fw.sources[state.clusterCidr] === FIREWALLD_ZONE
      ? [firewalldSourceCall('remove', state.clusterCidr)]
      : []),
    ...(record.firewalldProtocolZones ?? [])
      .filter((z) => fw.tunnelProtocolZones.includes(z))
      .map((z) => firewalldProtocolCall('remove', z)),
  ];
  for (const [file, ...args] of calls) {
    const r = await runCommand(file!, args);
    if (r.code !== 0) return `${file} ${args.join(' ')}: exit ${r.code}: ${(r.stderr || r.stdout).trim()}`;
    log(`firewalld: ${args.slice(4).join(' ')}`);
  }
  return undefined;
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
