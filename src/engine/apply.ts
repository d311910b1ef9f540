// Executes one host's plan: uploads (atomic, only what differs), config and unit (atomic),
// then daemon-reload/enable/start or restart only when something changed, then waits until
// the agent reports the new config converged. applyNetwork does that for every host asked for.
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { writeFilesScript, type FileToWrite } from './file-batch';
import {
  isConvergedOn,
  parseAgentStatus,
  statusSummary,
  statusFieldText,
  type MatchableStatusField,
  revisionPath,
  RUNTIME_CACHE_DIR,
  RUNTIME_PATH,
  statusPath,
  teardownRequestPath,
  tempPathFor,
  unitName,
  type NetworkNode,
} from '../model';
import { shQuote, wholeScript, type SshConnection } from '../ssh';
import { ConvergeTimeoutError, hostErrorOf, type HostError } from './host-error';
import { hostTimeout } from './host-timeouts';
import { fileText, planHost, type HostPlan, type HostTarget } from './host-plan';
import type { ArtifactSet } from './artifacts';
import type { EngineSession, HostSnapshot } from './session';
import { acquireHostLock, releaseHostLock, type HostLock } from './host-lock';
import { removeOtherNetwork } from './destroy';

/** One step of a host's apply and how long it took, for finding where a slow apply went. */
export interface ApplyStep {
  /** What was done, e.g. `uploaded node runtime`, `wrote podnet-agent.js, cluster.json`, `restart`, `converged`. */
  readonly what: string;
  readonly seconds: number;
}

interface ApplyHostOutcome {
  readonly node: string;
  /** True when any step ran: an apply that finds the host as planned changes nothing. */
  readonly changed: boolean;
  /** The steps done, in order (up to the failure, when it failed). */
  readonly steps: readonly ApplyStep[];
  /** Wall time of the host's whole apply. */
  readonly seconds: number;
}

export type ApplyHostResult =
  (ApplyHostOutcome & { readonly ok: true }) | (ApplyHostOutcome & { readonly ok: false; readonly error: HostError });

/**
 * A host-side loop that waits until the agent's status shows `configHash`, converged, from a
 * process other than `oldPid`, then prints the status. One SSH exec for the whole wait: polling
 * with an exec every 100 ms cost each host ~5 ms of sshd work per poll. Under bash (run it with
 * WAIT_COMMAND) an iteration forks nothing: the file is read and the 100 ms nap taken with
 * builtins; plain sh forks cat and sleep, ~2 ms a round, which 30 hosts waiting at once feel.
 * It matches the text the agent's writer produces for each field (statusFieldText, in the
 * status's one home); the caller parses what is printed and checks again. Exits 3 with the last
 * status when `timeoutS` runs out.
 */
export function convergeWaitScript(path: string, configHash: string, oldPid: number | undefined, timeoutS: number): string {
  const field = (k: MatchableStatusField, v: string | number) => shQuote(statusFieldText(k, v));
  const notOldPid =
    oldPid === undefined ? 'printf %s "$s"; exit 0' : `case "$s" in *${field('pid', oldPid)}*) ;; *) printf %s "$s"; exit 0;; esac`;
  return wholeScript(
    [
      `f=${shQuote(path)}`,
      // eval keeps bash's syntax away from sh's parser; fd 3 is a pipe nobody writes: read -t naps.
      'if [ -n "${BASH_VERSION:-}" ]; then',
      `  eval 'exec 3<> <(:); nap() { read -r -t 0.1 -u 3 _ || :; }; slurp() { s=; [ -r "$f" ] && { IFS= read -r -d "" s < "$f" || :; }; }'`,
      'else',
      '  nap() { sleep 0.1; }; slurp() { s=$(cat "$f" 2>/dev/null); }',
      'fi',
      `i=${Math.ceil(timeoutS * 10)}`,
      'while :; do',
      '  slurp',
      `  case "$s" in *${field('configHash', configHash)}*) case "$s" in *${field('state', 'converged')}*) ${notOldPid};; esac;; esac`,
      '  i=$((i - 1)); [ "$i" -gt 0 ] || { printf %s "$s"; exit 3; }',
      '  nap',
      'done',
    ].join('\n'),
  );
}

/** Runs a script given on stdin with bash where the host has it, else sh. */
export const WAIT_COMMAND = 'if command -v bash >/dev/null 2>&1; then exec bash -s; else exec sh -s; fi';

/** Waits for the agent's status to show this config hash, converged, from a fresh process. */
async function waitForConverged(conn: SshConnection, target: HostTarget, oldPid: number | undefined, timeoutMs: number): Promise<void> {
  const timeoutS = timeoutMs / 1000;
  const script = convergeWaitScript(statusPath(target.state.network), target.configHash, oldPid, timeoutS);
  const deadline = Date.now() + timeoutMs;
  let last = 'no status yet';
  // The loop normally returns once; a second round only if its match and ours ever disagree.
  while (Date.now() < deadline) {
    const r = await conn.exec(WAIT_COMMAND, { input: script, allowFailure: true, timeoutMs: timeoutMs + 5_000 });
    const parsed = r.stdout.trim() ? parseAgentStatus(r.stdout) : undefined;
    if (parsed?.ok) {
      const s = parsed.status;
      last = statusSummary(s);
      if (isConvergedOn(s, target.configHash, oldPid)) return;
    } else if (parsed) {
      last = `unreadable status (${parsed.reason})`;
    }
    if (r.code !== 0) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new ConvergeTimeoutError(
    `the agent did not report the new config converged within ${timeoutS} s (last: ${last}); see journalctl -u ${unitName(target.state.network)}`,
  );
}

/** Whether a status text read before apply shows the agent converged on `configHash`. */
function reportsConverged(statusText: string | undefined, configHash: string): boolean {
  const parsed = statusText === undefined ? undefined : parseAgentStatus(statusText);
  return parsed?.ok === true && isConvergedOn(parsed.status, configHash);
}

/** Points the runtime symlink at `target`, atomically (a new link renamed over the old one). */
function linkRuntimeCommand(target: string): string {
  // A unique name for the new link (ln -s refuses an existing one): two applies never share it.
  return `l=$(mktemp -u ${tempPathFor(RUNTIME_PATH, 'XXXXXX')}) && ln -s ${shQuote(target)} "$l" && mv -T "$l" ${RUNTIME_PATH}`;
}

export async function applyHost(
  conn: SshConnection,
  target: HostTarget,
  plan: HostPlan,
  revision: string | undefined,
  oldStatus: string | undefined,
): Promise<ApplyHostResult> {
  const started = Date.now();
  const steps: ApplyStep[] = [];
  let mark = Date.now();
  // Each step notes how long it took, so a slow apply shows where its time went.
  const done = (what: string) => {
    const now = Date.now();
    steps.push({ what, seconds: (now - mark) / 1000 });
    mark = now;
  };
  try {
    if (plan.runtime.action === 'ship') {
      // The runtime (large) streams on its own to a temp file beside its final place, is
      // checked that it runs, renamed, then the symlink is swapped atomically (a running agent
      // keeps its old binary open).
      const upload = plan.runtime.artifact;
      const dir = dirname(upload.remotePath);
      // A cut connection ends stdin early: the size check keeps a truncated binary out. The
      // sync before the rename keeps a power loss from leaving a renamed but unwritten binary
      // (XFS, btrfs, ext4 without auto_da_alloc) that plan would call `keep` forever.
      const binary = await readFile(upload.localPath);
      const t = '"$t"'; // a unique name from mktemp: two applies never write into one file
      // Runtimes of earlier versions go once the link has moved (a running agent keeps its open).
      const script = `set -e; mkdir -p ${shQuote(dir)}; t=$(mktemp ${shQuote(tempPathFor(`${dir}/.node`, 'XXXXXX'))}); trap 'rm -f "$t"' EXIT; cat > ${t}; [ "$(stat -c %s ${t})" = ${binary.length} ]; chmod 755 ${t}; ${t} --version >/dev/null; sync ${t}; mv -f ${t} ${shQuote(upload.remotePath)}; ${linkRuntimeCommand(upload.remotePath)}; for d in ${RUNTIME_CACHE_DIR}/*; do [ "$d" = ${shQuote(dir)} ] || rm -rf "$d"; done`;
      await conn.exec(script, { input: binary, timeoutMs: 300_000 });
      done('uploaded node runtime');
    }
    // Every other file goes in one batch.
    const small: FileToWrite[] = [];
    for (const upload of plan.uploads)
      small.push({ path: upload.remotePath, content: await readFile(upload.localPath), mode: upload.mode });
    for (const file of plan.files) small.push({ path: file.path, content: fileText(target, file.content), mode: 0o644 });
    if (revision) small.push({ path: revisionPath(target.state.network), content: `${revision}\n`, mode: 0o644 });
    if (small.length > 0) {
      // The script travels on stdin: as an argument it would hit the kernel's 128 KiB limit.
      await conn.exec('sh -s', { input: writeFilesScript(small), timeoutMs: 120_000 });
      done(`wrote ${small.map((f) => basename(f.path)).join(', ')}`);
    }
    // Another network's leftovers go after the files are written (this network's config keeps
    // the shared install directory in place) and before its agent starts.
    for (const other of plan.otherNetworks) done(await removeOtherNetwork(conn, target.node, other));
    const unit = unitName(target.state.network);
    const commands: string[] = [];
    const did: string[] = [];
    if (plan.runtime.action === 'link-host') {
      // Shipped runtimes are no longer needed once the agent runs on the host's own Node.
      commands.push(`mkdir -p ${dirname(RUNTIME_PATH)} && ${linkRuntimeCommand(plan.runtime.path)} && rm -rf ${RUNTIME_CACHE_DIR}`);
      did.push(`linked ${plan.runtime.path} (${plan.runtime.version})`);
    }
    if (plan.daemonReload) (commands.push('systemctl daemon-reload'), did.push('daemon-reload'));
    // Enabling only links the unit into multi-user.target.wants, read at boot: no reload needed.
    if (plan.enable) (commands.push(`systemctl --no-reload enable -q ${unit}`), did.push('enable'));
    // A teardown request left by a destroy killed half-way must not turn this restart into a teardown.
    if (plan.service !== 'none') commands.push(`rm -f ${teardownRequestPath(target.state.network)}`);
    // A systemd older than 246 keeps a unit it once found missing cached as missing: reload once then.
    if (plan.service === 'start')
      (commands.push(`{ systemctl start ${unit} 2>/dev/null || { systemctl daemon-reload && systemctl start ${unit}; }; }`),
        did.push('start'));
    if (plan.service === 'restart') (commands.push(`systemctl restart ${unit}`), did.push('restart'));
    if (commands.length > 0) {
      await conn.exec(commands.join(' && '), { timeoutMs: hostTimeout(60_000) });
      done(did.join('+'));
    }
    // An agent that reports itself degraded (its datapath not attached, say) is waited for too:
    // apply succeeds only where traffic can flow, and otherwise says why not.
    if (plan.service !== 'none' || plan.network.length > 0 || !reportsConverged(oldStatus, target.configHash)) {
      const old = plan.service === 'none' || oldStatus === undefined ? undefined : parseAgentStatus(oldStatus);
      const oldPid = old?.ok ? old.status.pid : undefined;
      await waitForConverged(conn, target, oldPid, hostTimeout(30_000));
      done('converged');
    }
    return { node: target.node, ok: true, changed: steps.length > 0, steps, seconds: (Date.now() - started) / 1000 };
  } catch (err) {
    return {
      node: target.node,
      ok: false,
      changed: steps.length > 0,
      steps,
      error: hostErrorOf(err),
      seconds: (Date.now() - started) / 1000,
    };
  }
}

/** `podnet apply` for a whole network (like terraform's apply of a plans.Plan, host by host). */
export interface NetworkApply {
  readonly network: string;
  /** Every host asked for, in that order; a host that could not be read or planned has failed. */
  readonly hosts: readonly ApplyHostResult[];
  /** True when every host applied. */
  readonly ok: boolean;
}

/** What the view hears while apply runs: a host starts (with its plan), a host is done. */
export type ApplyProgress =
  | { readonly event: 'applying'; readonly node: string; readonly plan: HostPlan }
  | { readonly event: 'applied'; readonly result: ApplyHostResult };

export interface ApplyOptions {
  /** Recorded on each host (read by the cdktf destroy guard). */
  readonly revision?: string;
  readonly onProgress?: (progress: ApplyProgress) => void;
  /** How long to wait for a host's lock held by another apply or destroy (default 0: fail at once). */
  readonly lockTimeoutMs?: number;
}

/**
 * Locks each of `nodes` (host-lock.ts), reads, plans and applies the plans of those it locked,
 * then gives the locks back; at most the session's maxParallel hosts at a time in every phase.
 * The lock covers the read too, so a plan is never made from a host another apply is changing.
 * One host's failure (its lock held by another included) does not stop the others; never
 * throws for a host.
 */
export async function applyNetwork(
  session: EngineSession,
  nodes: readonly NetworkNode[],
  artifacts: ArtifactSet,
  opts: ApplyOptions = {},
): Promise<NetworkApply> {
  const report = opts.onProgress ?? (() => undefined);
  const results = new Map<string, ApplyHostResult>();
  const failed = (node: string, error: HostError): void => {
    const result: ApplyHostResult = { node, ok: false, changed: false, steps: [], error, seconds: 0 };
    results.set(node, result);
    report({ event: 'applied', result });
  };
  const networkName = session.manifest.network.name;
  const locking = await session.pool.forEachHost(
    nodes.map((n) => session.sshTarget(n)),
    (conn, _t, i) => acquireHostLock(conn, nodes[i]!.name, networkName, 'apply', opts.lockTimeoutMs ?? 0),
  );
  const locks = new Map<string, HostLock>();
  locking.forEach((o, i) => (o.ok ? locks.set(nodes[i]!.name, o.value) : failed(nodes[i]!.name, hostErrorOf(o.error))));
  try {
    return await applyLocked(
      session,
      nodes.filter((n) => locks.has(n.name)),
      artifacts,
      report,
      results,
      failed,
      opts.revision,
      nodes,
    );
  } finally {
    const held = nodes.filter((n) => locks.has(n.name));
    await session.pool.forEachHost(
      held.map((n) => session.sshTarget(n)),
      (conn, _t, i) => releaseHostLock(conn, locks.get(held[i]!.name)!),
    );
  }
}

async function applyLocked(
  session: EngineSession,
  nodes: readonly NetworkNode[],
  artifacts: ArtifactSet,
  report: (progress: ApplyProgress) => void,
  results: Map<string, ApplyHostResult>,
  failed: (node: string, error: HostError) => void,
  revision: string | undefined,
  asked: readonly NetworkNode[],
): Promise<NetworkApply> {
  const { network, hosts } = await session.readNetwork(nodes);
  const planned: Array<{ host: HostSnapshot; plan: HostPlan; status: string | undefined }> = [];
  for (const host of hosts) {
    if (!host.read.ok) {
      failed(host.read.node, host.read.error);
      continue;
    }
    try {
      planned.push({ host, plan: planHost(host.target, host.read.reading, artifacts), status: host.read.reading.status });
    } catch (err) {
      failed(host.read.node, hostErrorOf(err));
    }
  }
  const outcomes = await session.pool.forEachHost(
    planned.map((p) => session.sshTarget(p.host.node)),
    async (conn, _target, i) => {
      const { host, plan, status } = planned[i]!;
      report({ event: 'applying', node: host.target.node, plan });
      const result = await applyHost(conn, host.target, plan, revision, status);
      report({ event: 'applied', result });
      return result;
    },
  );
  outcomes.forEach((o, i) => {
    if (o.ok) results.set(o.value.node, o.value);
    else failed(planned[i]!.host.target.node, hostErrorOf(o.error));
  });
  const ordered = asked.map((n) => results.get(n.name)!);
  return { network: network.name, hosts: ordered, ok: ordered.every((r) => r.ok) };
}
