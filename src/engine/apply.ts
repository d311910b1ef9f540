// Executes one host's plan: uploads (atomic, only what differs), config and unit (atomic),
// then daemon-reload/enable/start or restart only when something changed, then waits until
// the agent reports the new config converged.
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { writeFilesScript, type FileToWrite } from './file-batch';
import {
  AGENT_BUNDLE_PATH,
  CONFIG_DIR,
  FLANNEL_RUN_DIR,
  isConvergedOn,
  parseAgentStatus,
  statusFieldText,
  type MatchableStatusField,
  INSTALL_DIR,
  revisionPath,
  RUN_DIR,
  RUNTIME_CACHE_DIR,
  RUNTIME_PATH,
  statusPath,
  SUBNET_ENV_PATH,
  teardownRequestPath,
  tempFileGlob,
  tempPathFor,
  unitName,
} from '../model';
import { shQuote, wholeScript, type SshConnection } from '../ssh';
import type { HostPlan, HostTarget } from './host-plan';


export interface ApplyHostResult {
  readonly node: string;
  readonly ok: boolean;
  readonly changed: boolean;
  readonly actions: readonly string[];
  readonly error?: string;
  readonly seconds: number;
}

export class ConvergeTimeoutError extends Error {
  override readonly name = 'ConvergeTimeoutError';
}

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
  const notOldPid = oldPid === undefined ? 'printf %s "$s"; exit 0' : `case "$s" in *${field('pid', oldPid)}*) ;; *) printf %s "$s"; exit 0;; esac`;
  return wholeScript([
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
  ].join('\n'));
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
      last = `${s.state}${s.error ? `: ${s.error}` : ''}`;
      if (isConvergedOn(s, target.configHash, oldPid)) return;
    } else if (parsed) {
      last = `unreadable status (${parsed.reason})`;
    }
    if (r.code !== 0) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new ConvergeTimeoutError(`the agent did not report the new config converged within ${timeoutS} s (last: ${last}); see journalctl -u ${unitName(target.state.network)}`);
}

/** Points the runtime symlink at `target`, atomically (a new link renamed over the old one). */
function linkRuntimeCommand(target: string): string {
  // A unique name for the new link (ln -s refuses an existing one): two applies never share it.
  return `l=$(mktemp -u ${tempPathFor(RUNTIME_PATH, 'XXXXXX')}) && ln -s ${shQuote(target)} "$l" && mv -T "$l" ${RUNTIME_PATH}`;
}

export async function applyHost(conn: SshConnection, target: HostTarget, plan: HostPlan, revision: string | undefined, oldStatus: string | undefined): Promise<ApplyHostResult> {
  const started = Date.now();
  const actions: string[] = [];
  let mark = Date.now();
  // Each action notes how long it took, so a slow apply shows where its time went.
  const done = (what: string) => {
    const now = Date.now();
    actions.push(`${what} ${((now - mark) / 1000).toFixed(2)}s`);
    mark = now;
  };
  try {
    if (plan.runtime.action === 'ship') {
      // The runtime (large) streams on its own to a temp file beside its final place, is
      // checked that it runs, renamed, then the symlink is swapped atomically (a running agent
      // keeps its old binary open).
      const upload = plan.runtime.artifact;
      const dir = dirname(upload.remotePath);
      // A cut connection ends stdin early: the size check keeps a truncated binary out.
      const binary = await readFile(upload.localPath);
      const t = '"$t"'; // a unique name from mktemp: two applies never write into one file
      // Runtimes of earlier versions go once the link has moved (a running agent keeps its open).
      const script = `set -e; mkdir -p ${shQuote(dir)}; t=$(mktemp ${shQuote(tempPathFor(`${dir}/.node`, 'XXXXXX'))}); trap 'rm -f "$t"' EXIT; cat > ${t}; [ "$(stat -c %s ${t})" = ${binary.length} ]; chmod 755 ${t}; ${t} --version >/dev/null; mv -f ${t} ${shQuote(upload.remotePath)}; ${linkRuntimeCommand(upload.remotePath)}; for d in ${RUNTIME_CACHE_DIR}/*; do [ "$d" = ${shQuote(dir)} ] || rm -rf "$d"; done`;
      await conn.exec(script, { input: binary, timeoutMs: 300_000 });
      done('uploaded node runtime');
    }
    // Every other file goes in one batch.
    const small: FileToWrite[] = [];
    for (const upload of plan.uploads) small.push({ path: upload.remotePath, content: await readFile(upload.localPath), mode: upload.mode });
    for (const file of plan.files) small.push({ path: file.path, content: file.path === target.unitPath ? target.unit : target.config, mode: 0o644 });
    if (revision) small.push({ path: revisionPath(target.state.network), content: `${revision}\n`, mode: 0o644 });
    if (small.length > 0) {
      // The script travels on stdin: as an argument it would hit the kernel's 128 KiB limit.
      await conn.exec('sh -s', { input: writeFilesScript(small), timeoutMs: 120_000 });
      done(`wrote ${small.map((f) => basename(f.path)).join(', ')}`);
    }
    const unit = unitName(target.state.network);
    const commands: string[] = [];
    const steps: string[] = [];
    if (plan.runtime.action === 'link-host') {
      // Shipped runtimes are no longer needed once the agent runs on the host's own Node.
      commands.push(`mkdir -p ${dirname(RUNTIME_PATH)} && ${linkRuntimeCommand(plan.runtime.path)} && rm -rf ${RUNTIME_CACHE_DIR}`);
      steps.push(`linked ${plan.runtime.path} (${plan.runtime.version})`);
    }
    if (plan.daemonReload) commands.push('systemctl daemon-reload'), steps.push('daemon-reload');
    // Enabling only links the unit into multi-user.target.wants, read at boot: no reload needed.
    if (plan.enable) commands.push(`systemctl --no-reload enable -q ${unit}`), steps.push('enable');
    // A teardown request left by a destroy killed half-way must not turn this restart into a teardown.
    if (plan.service !== 'none') commands.push(`rm -f ${teardownRequestPath(target.state.network)}`);
    // A systemd older than 246 keeps a unit it once found missing cached as missing: reload once then.
    if (plan.service === 'start') commands.push(`{ systemctl start ${unit} 2>/dev/null || { systemctl daemon-reload && systemctl start ${unit}; }; }`), steps.push('start');
    if (plan.service === 'restart') commands.push(`systemctl restart ${unit}`), steps.push('restart');
    if (commands.length > 0) {
      await conn.exec(commands.join(' && '), { timeoutMs: 60_000 });
      done(steps.join('+'));
    }
    if (plan.service !== 'none' || plan.network.length > 0) {
      const old = plan.service === 'none' || oldStatus === undefined ? undefined : parseAgentStatus(oldStatus);
      const oldPid = old?.ok ? old.status.pid : undefined;
      await waitForConverged(conn, target, oldPid, 30_000);
      done('converged');
    }
    return { node: target.node, ok: true, changed: actions.length > 0, actions, seconds: (Date.now() - started) / 1000 };
  } catch (err) {
    return { node: target.node, ok: false, changed: actions.length > 0, actions, error: (err as Error).message, seconds: (Date.now() - started) / 1000 };
  }
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
    `  if [ -x ${RUNTIME_PATH} ] && [ -f ${configPath} ]; then ${RUNTIME_PATH} ${AGENT_BUNDLE_PATH} teardown --config ${configPath}; fi`,
    'fi',
    // With each file, the temp files a crash in the middle of writing it may have left.
    // subnet.env itself is the agent's to remove (teardown above); its temp file is not.
    `rm -f ${[unitPath, configPath, revisionPath(network), statusPath(network)].flatMap((p) => [p, tempFileGlob(p)]).join(' ')} ${tempFileGlob(SUBNET_ENV_PATH)}`,
    'systemctl daemon-reload',
    `rmdir ${CONFIG_DIR} 2>/dev/null || true`,
    `if [ -z "$(ls ${CONFIG_DIR} 2>/dev/null)" ]; then rm -rf ${INSTALL_DIR}; fi`,
    `rmdir ${RUN_DIR} ${FLANNEL_RUN_DIR} 2>/dev/null || true`,
  ].join('\n');
  await conn.exec(script, { timeoutMs: 60_000 });
  actions.push('stopped and disabled agent', 'tore down network', 'removed files');
  return actions;
}
