// `podnet destroy`: stop the agent, have it tear down what it created, remove podnet's files.
// The revision guard (--if-revision, used by the cdktf destroy-time provisioner) skips a host
// whose recorded revision is another: a newer apply has replaced that resource, so the network
// must stay. The engine removes the files and the unit it installed; the agent removes the
// network state it created (agent/teardown.ts).
import { dirname } from 'node:path';
import {
  AGENT_BUNDLE_PATH,
  BPF_PIN_ROOT,
  nftTableName,
  ROUTE_PROTOCOL,
  TUNNEL_DEVICE,
  agentConfigPath,
  CONFIG_DIR,
  cniConfLocation,
  cniDirsCreatedPath,
  DEFAULT_CNI_CONF_DIR,
  MANAGER_RELOAD,
  FLANNEL_RUN_DIR,
  INSTALL_DIR,
  ipForwardMemoPath,
  lockPath,
  ownershipRecordPath,
  revisionPath,
  RUN_DIR,
  RUNTIME_PATH,
  statusPath,
  SUBNET_ENV_PATH,
  teardownRequestPath,
  tempFileGlob,
  unitName,
  unitPath,
  unmanagedConfigs,
  forwardRuleComment,
  IPTABLES_BACKENDS,
  IPTABLES_COMMANDS,
  TEARDOWN_CONFIG_UNREADABLE,
  type NetworkNode,
} from '../model';
import { otherAgentActiveTest } from '../host/live-state';
import { otherNetworkName, type OtherNetwork } from '../planner/stale-state';
import { shQuote, SshConnection, type SshTarget } from '../ssh';
import { hostErrorOf, type HostError } from './host-error';
import { hostTimeout } from './host-timeouts';
import type { EngineSession } from './session';
import { acquireHostLock, releaseHostLock } from './host-lock';

export type DestroyHostResult =
  /** `steps`: what was done, in order, for people. */
  | { readonly node: string; readonly outcome: 'destroyed'; readonly steps: readonly string[] }
  /** The guard held: the host records `heldRevision`, the destroy was for `wantedRevision`. */
  | { readonly node: string; readonly outcome: 'skipped'; readonly heldRevision: string; readonly wantedRevision: string }
  | { readonly node: string; readonly outcome: 'failed'; readonly error: HostError };

export interface NetworkDestroy {
  readonly network: string;
  /** Every host asked for, in that order. */
  readonly hosts: readonly DestroyHostResult[];
  /** True when no host failed (a skipped host is fine). */
  readonly ok: boolean;
}

export interface DestroyOptions {
  /** Only hosts whose recorded revision is this one (or that record none). */
  readonly ifRevision?: string;
  /** How long to wait for a host's lock held by another apply or destroy (default 0: fail at once). */
  readonly lockTimeoutMs?: number;
}

/**
 * A shell test that is true while `network`'s state is on the host: its nftables table, or the
 * state every network shares (device, routes, pins). That shared state is another network's, not
 * this one's, only while another network's agent is active, or where this network has no
 * ownership record and another network's config is there (a network refused on this host never
 * had any): a table flushed away (`nft flush ruleset`) must not make a host look clean.
 */
export function podnetStateTest(network: string): string {
  const othersConfig = `[ -n "$(ls ${agentConfigPath('*')} 2>/dev/null | grep -vxF ${agentConfigPath(network)})" ]`;
  const othersState = `{ ${otherAgentActiveTest(network)} || { [ ! -f ${ownershipRecordPath(network)} ] && ${othersConfig}; }; }`;
  const shared = `ip link show dev ${TUNNEL_DEVICE} >/dev/null 2>&1 || [ -n "$(ip -N -4 route show proto ${ROUTE_PROTOCOL} 2>/dev/null)" ] || [ -e ${BPF_PIN_ROOT} ]`;
  return `{ nft list table ip ${nftTableName(network)} >/dev/null 2>&1 || { ! ${othersState} && { ${shared}; }; }; }`;
}

/**
 * `rm -f` of `network`'s files: `extra` (its config and unit), its revision, status and lock
 * (the caller holds it: the host ends as it was before podnet came), each with the temp files
 * a crash in the middle of writing it may have left.
 */
function removeFilesCommand(network: string, extra: readonly string[]): string {
  return `rm -f ${[...extra, revisionPath(network), statusPath(network), lockPath(network)].flatMap((p) => [p, tempFileGlob(p)]).join(' ')}`;
}

/**
 * Shell lines removing the files carrying `network`'s name that the agent's teardown removes
 * (network managers' unmanaged files, each manager reloaded when one went; the conflist in the
 * default CNI directory), and its ownership record and ip_forward note, meaningless without it.
 */
export function namedFilesRemoval(network: string): string[] {
  const conflist = cniConfLocation(network, DEFAULT_CNI_CONF_DIR).path;
  return [
    ...unmanagedConfigs(network).map(
      (c) => `if [ -f ${c.path} ]; then rm -f ${c.path}; ${MANAGER_RELOAD[c.manager].join(' ')} >/dev/null 2>&1 || :; fi`,
    ),
    `rm -f ${conflist} ${tempFileGlob(conflist)} ${ownershipRecordPath(network)} ${ipForwardMemoPath(network)}`,
  ];
}

/**
 * Shell lines deleting `network`'s accept rules from each iptables filter FORWARD chain, found
 * by their comment (forwardRuleComment) in iptables-save's listing: whatever CIDR they name.
 */
export function forwardRulesRemoval(network: string): string[] {
  const comment = `--comment "${forwardRuleComment(network)}"`;
  return IPTABLES_BACKENDS.map((b) => {
    const { iptables, save } = IPTABLES_COMMANDS[b];
    return `if command -v ${save} >/dev/null 2>&1; then ${save} -t filter 2>/dev/null | grep -F -e ${shQuote(comment)} | sed -n 's/^-A FORWARD /-D FORWARD /p' | while read -r rule; do eval "${iptables} -w $rule" || :; done; fi`;
  });
}

/** The marker removeOtherNetworkScript prints when the other network's teardown could not read its config. */
const BY_NAME_MARKER = '@by-name';

/**
 * Removes another podnet network's leftovers from a host being applied (its agent is not
 * running: plan refuses a host where it does). With `other.teardown` its own teardown runs, as
 * its destroy would (one that cannot read its config, written by an older podnet, falls back to
 * names, saying so). Otherwise (no config, or this network's own state may be on the host:
 * flannel.ipip, cni0, the routes and pins are then not the other's to take) only what carries
 * its name goes: its nftables tables, FORWARD rules (by comment), unmanaged files, conflist,
 * record, unit and files. An nftables table no network claims is deleted. Fails (teardown's
 * error) rather than leave a host half-cleaned unsaid.
 */
export function removeOtherNetworkScript(other: OtherNetwork): string {
  const tables = other.nftTables.map((t) => `nft delete table ip ${t} 2>/dev/null || :`);
  const x = other.network;
  if (x === undefined) return ['set -e', ...tables].join('\n');
  const config = agentConfigPath(x);
  const byName = [...tables, ...forwardRulesRemoval(x)];
  const teardown = `${RUNTIME_PATH} ${AGENT_BUNDLE_PATH} teardown --config ${config}`;
  return [
    'set -e',
    `systemctl --no-reload disable --now -q ${unitName(x)} 2>/dev/null || :`,
    ...(other.teardown
      ? [
          `rc=0; ${teardown} || rc=$?`,
          `if [ "$rc" = ${TEARDOWN_CONFIG_UNREADABLE} ]; then echo ${BY_NAME_MARKER}; ${byName.join('; ')}; elif [ "$rc" != 0 ]; then exit "$rc"; fi`,
          ...tables,
        ]
      : byName),
    ...namedFilesRemoval(x),
    `rm -f ${teardownRequestPath(x)} ${cniDirsCreatedPath(x)}`,
    removeFilesCommand(x, [config, unitPath(x)]),
    'systemctl daemon-reload',
  ].join('\n');
}

/**
 * Runs removeOtherNetworkScript on `node` under the other network's own lock (an apply or
 * destroy of it in progress makes this fail, naming it). Returns what was done, for apply's steps.
 */
export async function removeOtherNetwork(conn: SshConnection, node: string, other: OtherNetwork): Promise<string> {
  const lock = other.network === undefined ? undefined : await acquireHostLock(conn, node, other.network, 'apply', 0);
  let out: string;
  try {
    out = (await conn.exec(removeOtherNetworkScript(other), { timeoutMs: hostTimeout(60_000) })).stdout;
  } finally {
    if (lock) await releaseHostLock(conn, lock);
  }
  const name = otherNetworkName(other);
  if (out.split('\n').includes(BY_NAME_MARKER))
    return `removed ${name} by name only: its teardown could not read its config (left by another podnet version)`;
  return other.teardown || other.network === undefined ? `removed ${name}` : `removed ${name} by name only`;
}

/** Removes everything podnet installed, after the agent has torn the network down. */
export async function destroyHost(conn: SshConnection, network: string, configPath: string, unitPath: string): Promise<string[]> {
  const unit = unitName(network);
  const actions: string[] = [];
  const request = teardownRequestPath(network);
  const script = [
    'set -e',
    // A running agent is asked to tear down as it stops (no second Node boot): the request names
    // its PID, and it removes the request when done. Otherwise (not running, an older agent,
    // its teardown failed) a teardown process does it and reports what went wrong. Whatever
    // happens, the request does not outlive this script.
    'asked=',
    `pid=$(systemctl show -p MainPID --value ${unit} 2>/dev/null || :)`,
    `trap 'rm -f ${request}' EXIT; trap 'exit 1' HUP INT TERM`,
    `if [ -n "$pid" ] && [ "$pid" != 0 ]; then mkdir -p ${dirname(request)} && echo "$pid" > ${request} && asked=1; fi`,
    // One reload at the end (to forget the removed unit) instead of one in disable as well.
    `systemctl --no-reload disable --now -q ${unit} 2>/dev/null || true`,
    `if [ -z "$asked" ] || [ -e ${request} ]; then`,
    `  rm -f ${request}`,
    `  if [ -x ${RUNTIME_PATH} ] && [ -f ${configPath} ]; then ${RUNTIME_PATH} ${AGENT_BUNDLE_PATH} teardown --config ${configPath}`,
    // No teardown can run, yet the network is there: fail, keeping config and unit so that a
    // destroy can run again once the runtime is back (podnet apply), instead of reporting a
    // host clean that is not.
    `  elif ${podnetStateTest(network)}; then`,
    `    if [ -f ${configPath} ]; then why="its Node.js runtime ${RUNTIME_PATH} cannot run (-> $(readlink ${RUNTIME_PATH} || echo missing))"; else why="its config ${configPath} is missing"; fi`,
    `    echo "cannot tear the network down: $why; podnet's routes, devices and rules are still there and nothing was removed (run podnet apply to restore the agent, then destroy again)" >&2`,
    '    exit 3',
    '  fi',
    'fi',
    // What carries the network's name outside podnet's directories goes here too: where no
    // teardown could run (nothing of the network left to tear down, as after a reboot, with the
    // runtime or config gone) it would stay behind for good. After a teardown, nothing is left.
    ...namedFilesRemoval(network),
    // subnet.env itself is the agent's to remove (teardown above); its temp file is not.
    `${removeFilesCommand(network, [configPath, unitPath])} ${tempFileGlob(SUBNET_ENV_PATH)}`,
    'systemctl daemon-reload',
    `rmdir ${CONFIG_DIR} 2>/dev/null || true`,
    `if [ -z "$(ls ${CONFIG_DIR} 2>/dev/null)" ]; then rm -rf ${INSTALL_DIR}; fi`,
    // The CNI config directories the unit made (the agent removed its conflist): innermost
    // first, each only if empty, so a runtime's own configs keep theirs.
    `m=${cniDirsCreatedPath(network)}; if [ -f $m ]; then for d in $(tac $m); do rmdir $d 2>/dev/null || true; done; rm -f $m; fi`,
    `rmdir ${RUN_DIR} ${FLANNEL_RUN_DIR} 2>/dev/null || true`,
  ].join('\n');
  await conn.exec(script, { timeoutMs: hostTimeout(60_000) });
  actions.push('stopped and disabled agent', 'tore down network', 'removed files');
  return actions;
}

/**
 * Destroys one host through `conn`, unless the revision guard says the host is another's now.
 * The host's lock is held from the guard's read to the end, so an apply cannot slip in between.
 */
async function destroyOne(conn: SshConnection, node: string, network: string, opts: DestroyOptions): Promise<DestroyHostResult> {
  const lock = await acquireHostLock(conn, node, network, 'destroy', opts.lockTimeoutMs ?? 0);
  try {
    if (opts.ifRevision) {
      const held = (await conn.exec(`cat ${revisionPath(network)} 2>/dev/null`, { allowFailure: true })).stdout.trim();
      if (held && held !== opts.ifRevision) return { node, outcome: 'skipped', heldRevision: held, wantedRevision: opts.ifRevision };
    }
    return { node, outcome: 'destroyed', steps: await destroyHost(conn, network, agentConfigPath(network), unitPath(network)) };
  } finally {
    await releaseHostLock(conn, lock);
  }
}

function networkDestroy(network: string, hosts: DestroyHostResult[]): NetworkDestroy {
  return { network, hosts, ok: hosts.every((h) => h.outcome !== 'failed') };
}

/** Destroys the manifest's network on `nodes`, at most the session's maxParallel at a time. */
export async function destroyNetwork(
  session: EngineSession,
  nodes: readonly NetworkNode[],
  opts: DestroyOptions = {},
): Promise<NetworkDestroy> {
  const network = session.manifest.network.name;
  const outcomes = await session.pool.forEachHost(
    nodes.map((n) => session.sshTarget(n)),
    (conn, _target, i) => destroyOne(conn, nodes[i]!.name, network, opts),
  );
  return networkDestroy(
    network,
    outcomes.map((o, i) => (o.ok ? o.value : { node: nodes[i]!.name, outcome: 'failed', error: hostErrorOf(o.error) })),
  );
}

/** One host named on the command line, without a manifest (a node already removed from it). */
export interface DestroyTarget {
  readonly network: string;
  readonly node: string;
  readonly ssh: SshTarget;
}

/** Destroys `target.network` on one host reached directly, as the cdktf destroy provisioner asks. */
export async function destroyAt(target: DestroyTarget, opts: DestroyOptions = {}): Promise<NetworkDestroy> {
  let result: DestroyHostResult;
  try {
    const conn = await SshConnection.connect(target.ssh);
    try {
      result = await destroyOne(conn, target.node, target.network, opts);
    } finally {
      await conn.close();
    }
  } catch (err) {
    const error = hostErrorOf(err);
    // The cdktf destroy provisioner (the one caller with a guard) fails the instance's destroy:
    // Terraform keeps it in its state, so say how this ends.
    const later = opts.ifRevision
      ? `; the node stays in Terraform's state and the next cdktf deploy (or cdktf destroy) tries again; to give up on the host, run terraform state rm on its podnet instance`
      : '';
    result = { node: target.node, outcome: 'failed', error: { ...error, message: `${error.message}${later}` } };
  }
  return networkDestroy(target.network, [result]);
}
