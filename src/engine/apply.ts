// Executes one host's plan: uploads (atomic, only what differs), config and unit (atomic),
// then daemon-reload/enable/start or restart only when something changed, then waits until
// the agent reports the new config converged.
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { writeFilesScript, type FileToWrite } from './file-batch';
import { RUNTIME_PATH, statusPath, unitName } from '../model';
import { shQuote, type SshConnection } from '../ssh';
import type { HostPlan, HostTarget } from './host-plan';
import { revisionPath } from './host-reading';

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

/** Waits for the agent's status to show this config hash, converged, from a fresh process. */
async function waitForConverged(conn: SshConnection, target: HostTarget, oldPid: number | undefined, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no status yet';
  const path = statusPath(target.state.network);
  while (Date.now() < deadline) {
    const raw = await conn.exec(`cat ${path} 2>/dev/null`, { allowFailure: true, timeoutMs: 5_000 });
    if (raw.code === 0 && raw.stdout.trim()) {
      try {
        const s = JSON.parse(raw.stdout) as { state: string; configHash: string; pid: number; error?: string; remaining?: unknown[] };
        last = `${s.state}${s.error ? `: ${s.error}` : ''}`;
        if (s.configHash === target.configHash && s.pid !== oldPid && s.state === 'converged') return;
      } catch {
        // Written atomically, so a parse error means an old agent format; keep waiting.
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new ConvergeTimeoutError(`the agent did not report the new config converged within ${timeoutMs / 1000} s (last: ${last}); see journalctl -u ${unitName(target.state.network)}`);
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
    // The runtime (large) streams on its own; every other file goes in one batch.
    const small: FileToWrite[] = [];
    for (const upload of plan.uploads) {
      if (upload.name === 'node') {
        // Streamed to a temp file beside its final place, checked that it runs, renamed, then
        // the symlink is swapped atomically (a running agent keeps its old binary open).
        const dir = dirname(upload.remotePath);
        const tmp = `${dir}/.node.podnet-tmp`;
        // A cut connection ends stdin early: the size check keeps a truncated binary out.
        const binary = await readFile(upload.localPath);
        const t = shQuote(tmp);
        const script = `set -e; trap 'rm -f ${t}' EXIT; mkdir -p ${shQuote(dir)}; cat > ${t}; [ "$(stat -c %s ${t})" = ${binary.length} ]; chmod 755 ${t}; ${t} --version >/dev/null; mv -f ${t} ${shQuote(upload.remotePath)}; ln -sfn ${shQuote(upload.remotePath)} ${RUNTIME_PATH}.new; mv -T ${RUNTIME_PATH}.new ${RUNTIME_PATH}`;
        await conn.exec(script, { input: binary, timeoutMs: 300_000 });
        done('uploaded node runtime');
      } else {
        small.push({ path: upload.remotePath, content: await readFile(upload.localPath), mode: upload.mode });
      }
    }
    for (const file of plan.files) small.push({ path: file.path, content: file.path === target.unitPath ? target.unit : target.config, mode: 0o644 });
    if (revision) small.push({ path: revisionPath(target.state.network), content: `${revision}\n`, mode: 0o644 });
    if (small.length > 0) {
      // The script travels on stdin: as an argument it would hit the kernel's 128 KiB limit.
      await conn.exec('sh -s', { input: writeFilesScript(small), timeoutMs: 120_000 });
      done(`wrote ${small.map((f) => basename(f.path)).join(', ')}`);
    }
    const unit = unitName(target.state.network);
    const commands: string[] = [];
    if (plan.daemonReload) commands.push('systemctl daemon-reload');
    if (plan.enable) commands.push(`systemctl enable -q ${unit}`);
    if (plan.service === 'start') commands.push(`systemctl start ${unit}`);
    if (plan.service === 'restart') commands.push(`systemctl restart ${unit}`);
    if (commands.length > 0) {
      await conn.exec(commands.join(' && '), { timeoutMs: 60_000 });
      done(commands.map((c) => c.replace(/^systemctl /, '').replace(` ${unit}`, '').replace(' -q', '')).join('+'));
    }
    if (plan.service !== 'none' || plan.network.length > 0) {
      let oldPid: number | undefined;
      try {
        oldPid = plan.service === 'none' ? undefined : (JSON.parse(oldStatus ?? '{}') as { pid?: number }).pid;
      } catch {
        oldPid = undefined;
      }
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
  const script = [
    'set -e',
    `systemctl disable --now -q ${unit} 2>/dev/null || true`,
    `if [ -x ${RUNTIME_PATH} ] && [ -f ${configPath} ]; then ${RUNTIME_PATH} ${dirname(RUNTIME_PATH)}/podnet-agent.js teardown --config ${configPath}; fi`,
    `rm -f ${unitPath} ${configPath} ${revisionPath(network)} ${statusPath(network)} ${statusPath(network)}.tmp`,
    'systemctl daemon-reload',
    'rmdir /etc/podnet 2>/dev/null || true',
    `if [ -z "$(ls /etc/podnet 2>/dev/null)" ]; then rm -rf ${dirname(RUNTIME_PATH)}; fi`,
    'rmdir /run/podnet /run/flannel 2>/dev/null || true',
  ].join('\n');
  await conn.exec(script, { timeoutMs: 60_000 });
  actions.push('stopped and disabled agent', 'tore down network', 'removed files');
  return actions;
}
