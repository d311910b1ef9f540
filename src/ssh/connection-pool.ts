// One connection per target, shared by every caller, and a bounded-parallel loop over hosts.
import { SshError, describeTarget } from './errors';
import { SshConnection, type SshTarget } from './ssh-connection';

export type HostOutcome<T> = { target: SshTarget; ok: true; value: T } | { target: SshTarget; ok: false; error: SshError };

export interface SshPoolOptions {
  /** Hosts worked on at once by forEachHost. Default 8. */
  maxParallel?: number;
  /** How connections are made; tests substitute a fake. Default SshConnection.connect. */
  connect?: (target: SshTarget) => Promise<SshConnection>;
}

/** Connections are shared only between targets that agree on everything that shapes them. */
export function poolKey(t: SshTarget): string {
  return JSON.stringify([
    t.user ?? 'root',
    t.host.toLowerCase(),
    t.port ?? 22,
    t.privateKeyPath ?? null,
    t.useAgent ?? null,
    t.knownHostsPath ?? null,
    t.acceptNewHostKeys ?? false,
    t.sudo ?? false,
    t.commandTimeoutMs ?? null,
  ]);
}

export class SshPool {
  readonly maxParallel: number;
  private readonly connectFn: (target: SshTarget) => Promise<SshConnection>;
  private readonly conns = new Map<string, Promise<SshConnection>>();

  constructor(opts: SshPoolOptions = {}) {
    const n = opts.maxParallel ?? 8;
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`maxParallel must be a positive integer, got ${n}`);
    this.maxParallel = n;
    this.connectFn = opts.connect ?? ((t) => SshConnection.connect(t));
  }

  /** The open connection for the target, connecting on first use (and again after it dropped). */
  async get(target: SshTarget): Promise<SshConnection> {
    const key = poolKey(target);
    const existing = this.conns.get(key);
    if (existing) {
      const conn = await existing.catch(() => undefined);
      if (conn && !conn.closed) return conn;
      // Failed or dropped: only the first caller to notice replaces it.
      if (this.conns.get(key) === existing) this.conns.delete(key);
      else return this.get(target);
    }
    const pending = this.connectFn(target);
    this.conns.set(key, pending);
    pending.catch(() => {
      if (this.conns.get(key) === pending) this.conns.delete(key);
    });
    return pending;
  }

  /**
   * Runs fn on every target's connection, at most maxParallel at once. Never rejects: each
   * target gets an outcome, in the order given; failures are SshErrors naming the host. `fn`
   * also gets the target's index in `targets`, for callers that keep per-host data beside it.
   */
  async forEachHost<T>(
    targets: SshTarget[],
    fn: (conn: SshConnection, target: SshTarget, index: number) => Promise<T>,
  ): Promise<Array<HostOutcome<T>>> {
    const results = new Array<HostOutcome<T>>(targets.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < targets.length) {
        const i = next++;
        const target = targets[i]!;
        try {
          const conn = await this.get(target);
          results[i] = { target, ok: true, value: await fn(conn, target, i) };
        } catch (e) {
          results[i] = { target, ok: false, error: toSshError(e, target) };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.maxParallel, targets.length) }, worker));
    return results;
  }

  async closeAll(): Promise<void> {
    const all = [...this.conns.values()];
    this.conns.clear();
    await Promise.all(
      all.map((p) =>
        p.then(
          (c) => c.close(),
          () => undefined,
        ),
      ),
    );
  }
}

function toSshError(e: unknown, target: SshTarget): SshError {
  if (e instanceof SshError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new SshError('internal', describeTarget(target), message, { cause: e });
}
