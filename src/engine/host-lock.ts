// A lock per host and network, held for the whole of one host's apply or destroy, so that two
// applies (two pipelines, a pipeline and a colleague) never interleave on a host: the second
// waits up to its lock timeout (default 0, like terraform's -lock-timeout), then fails naming
// the holder. It locks one host, never the network: terraform's parallel `podnet apply --node X`
// runs take different locks. Drift takes none (it reads a host in one exec).
//
// The lock is a file in the host layout's RUN_DIR (a tmpfs: a reboot frees it) holding who took it. Taking,
// replacing and removing it happen under flock(1) on its directory, so two takers never both
// win. A lock left by a killed apply is a lease: it expires LOCK_LEASE_S after it was taken
// (longer than the longest apply: every step has a timeout), or `podnet force-unlock` removes
// it at once, given its id.
import { randomUUID } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { lockPath, RUN_DIR, tempPathFor } from '../model';
import { shQuote, type SshConnection } from '../ssh';

/** Seconds a lock stays valid: more than an apply can take (upload 300 s, writes 120 s, restart 60 s, converge 35 s, read 30 s). */
export const LOCK_LEASE_S = 15 * 60;

/** Who holds a host's lock; `since`/`expires` are Unix seconds on the host's clock. */
export interface LockHolder {
  readonly id: string;
  readonly user: string;
  readonly workstation: string;
  readonly pid: number;
  readonly operation: LockOperation;
  readonly since: number;
  readonly expires: number;
}

export type LockOperation = 'apply' | 'destroy';

/** What a host's lock file says: a holder, or text that is not one (then `id` is its hash). */
export type LockFile = { readonly kind: 'held'; readonly holder: LockHolder } | { readonly kind: 'unreadable'; readonly id: string };

/** The lock is held by someone else (after waiting up to the lock timeout). */
export class HostLockedError extends Error {
  override readonly name = 'HostLockedError';
  constructor(
    message: string,
    readonly lock: LockFile,
  ) {
    super(message);
  }
}

/** A lock this process holds on one host. */
export interface HostLock {
  readonly network: string;
  readonly holder: LockHolder;
}

const HELD_EXIT = 75;

/** This process as a lock holder (the host fills in the times). */
export function lockRequest(operation: LockOperation): Omit<LockHolder, 'since' | 'expires'> {
  let user = process.env.USER ?? 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry for this uid: keep $USER
  }
  return { id: randomUUID(), user, workstation: hostname(), pid: process.pid, operation };
}

/**
 * Takes the lock unless someone else holds one that has not expired. Prints `acquired` and the
 * new file, or exits 75 after printing `held <sha256 prefix of the file>` and the file.
 */
export function acquireLockScript(network: string, request: Omit<LockHolder, 'since' | 'expires'>, leaseS = LOCK_LEASE_S): string {
  const file = shQuote(lockPath(network));
  // The JSON up to the times, which come from the host's clock (no skew with the workstation).
  const prefix = JSON.stringify(request).replace(/\}$/, ',');
  return [
    'set -e',
    `mkdir -p ${RUN_DIR}`,
    `exec 9< ${RUN_DIR}`,
    'flock -w 10 9',
    'now=$(date +%s)',
    `if [ -e ${file} ]; then`,
    `  exp=$(sed -n 's/.*"expires":\\([0-9][0-9]*\\).*/\\1/p' ${file} | head -n 1)`,
    `  if [ -z "$exp" ] || [ "$now" -lt "$exp" ]; then echo "held $(sha256sum ${file} | cut -c1-16)"; cat ${file}; exit ${HELD_EXIT}; fi`,
    'fi',
    `t=$(mktemp ${shQuote(tempPathFor(lockPath(network), 'XXXXXX'))})`,
    `printf '%s"since":%s,"expires":%s}\\n' ${shQuote(prefix)} "$now" "$((now + ${leaseS}))" > "$t"`,
    `mv -f "$t" ${file}`,
    'echo acquired',
    `cat ${file}`,
  ].join('\n');
}

/** Removes the lock if its id (or, for an unreadable file, its hash) is `id`; exits 75 printing it otherwise, 3 when there is none. */
export function removeLockScript(network: string, id: string): string {
  const file = shQuote(lockPath(network));
  return [
    `[ -d ${RUN_DIR} ] || exit 3`,
    `exec 9< ${RUN_DIR}`,
    'flock -w 10 9 || exit 1',
    `[ -e ${file} ] || exit 3`,
    `if grep -qF ${shQuote(`"id":${JSON.stringify(id)}`)} ${file} || [ "$(sha256sum ${file} | cut -c1-16)" = ${shQuote(id)} ]; then rm -f ${file}; exit 0; fi`,
    `echo "held $(sha256sum ${file} | cut -c1-16)"; cat ${file}; exit ${HELD_EXIT}`,
  ].join('\n');
}

/** Parses what the scripts print after `held <hash>` or `acquired`: the lock file's text. */
export function parseLockFile(text: string, hash: string): LockFile {
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    const ok =
      typeof v.id === 'string' &&
      typeof v.user === 'string' &&
      typeof v.workstation === 'string' &&
      Number.isInteger(v.pid) &&
      (v.operation === 'apply' || v.operation === 'destroy') &&
      Number.isInteger(v.since) &&
      Number.isInteger(v.expires);
    if (ok) return { kind: 'held', holder: v as unknown as LockHolder };
  } catch {
    // not JSON: below
  }
  return { kind: 'unreadable', id: hash };
}

const iso = (unixS: number): string => new Date(unixS * 1000).toISOString().replace(/\.000Z$/, 'Z');

/** The message for a lock someone else holds: who, since when, and the two ways out. */
export function describeHeldLock(node: string, network: string, lock: LockFile, waitedS: number): string {
  const waited = waitedS > 0 ? ` (waited ${waitedS} s)` : '';
  const unlock = `podnet force-unlock --node ${node} ${lock.kind === 'held' ? lock.holder.id : lock.id}`;
  if (lock.kind === 'unreadable') {
    return `${node}: ${lockPath(network)} is not a podnet lock (unreadable)${waited}; if no podnet works on this host, remove it with: ${unlock}`;
  }
  const h = lock.holder;
  return (
    `${node}: locked by ${h.user}@${h.workstation} (pid ${h.pid}, podnet ${h.operation}) since ${iso(h.since)}${waited}; ` +
    `wait for it (--lock-timeout), or, if that podnet is gone, run: ${unlock} (the lock expires by itself at ${iso(h.expires)})`
  );
}

function splitOutput(stdout: string): { head: string; body: string } {
  const nl = stdout.indexOf('\n');
  return nl < 0 ? { head: stdout.trim(), body: '' } : { head: stdout.slice(0, nl).trim(), body: stdout.slice(nl + 1).trim() };
}

/**
 * Takes `network`'s lock on the host behind `conn`, retrying every second for up to
 * `timeoutMs` (0: one try). Throws HostLockedError naming the holder when it stays held.
 */
export async function acquireHostLock(
  conn: SshConnection,
  node: string,
  network: string,
  operation: LockOperation,
  timeoutMs = 0,
): Promise<HostLock> {
  const request = lockRequest(operation);
  const script = acquireLockScript(network, request);
  const started = Date.now();
  for (;;) {
    const r = await conn.exec(script, { allowFailure: true, timeoutMs: 30_000 });
    const { head, body } = splitOutput(r.stdout);
    if (r.code === 0 && head === 'acquired') {
      const file = parseLockFile(body, '');
      if (file.kind !== 'held' || file.holder.id !== request.id)
        throw new Error(`${node}: the lock just taken reads back as something else: ${body}`);
      return { network, holder: file.holder };
    }
    if (r.code !== HELD_EXIT)
      throw new Error(`${node}: could not take the lock ${lockPath(network)} (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
    const lock = parseLockFile(body, head.replace(/^held /, ''));
    const left = started + timeoutMs - Date.now();
    if (left <= 0) throw new HostLockedError(describeHeldLock(node, network, lock, Math.round((Date.now() - started) / 1000)), lock);
    await new Promise((resolve) => setTimeout(resolve, Math.min(1000, left)));
  }
}

/** Gives the lock back; a lock already gone (destroy removed RUN_DIR) is fine. */
export async function releaseHostLock(conn: SshConnection, lock: HostLock): Promise<void> {
  await conn.exec(removeLockScript(lock.network, lock.holder.id), { allowFailure: true, timeoutMs: 30_000 });
}

export type ForceUnlockResult =
  { readonly outcome: 'removed' } | { readonly outcome: 'none' } | { readonly outcome: 'other'; readonly lock: LockFile };

/** Removes `network`'s lock on a host if its id is `id` (podnet force-unlock), else says what holds it. */
export async function forceUnlock(conn: SshConnection, network: string, id: string): Promise<ForceUnlockResult> {
  const r = await conn.exec(removeLockScript(network, id), { allowFailure: true, timeoutMs: 30_000 });
  if (r.code === 0) return { outcome: 'removed' };
  if (r.code === 3) return { outcome: 'none' };
  if (r.code !== HELD_EXIT) throw new Error(`could not read the lock ${lockPath(network)} (exit ${r.code}): ${r.stderr.trim()}`);
  const { head, body } = splitOutput(r.stdout);
  return { outcome: 'other', lock: parseLockFile(body, head.replace(/^held /, '')) };
}
