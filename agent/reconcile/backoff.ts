// Backoff for repairs something keeps undoing. Without it, a tool that deletes podnet's route
// each time it appears (NetworkManager re-applying a profile, another controller, a second
// network on the host) drives an event-driven loop: delete -> netlink event -> repair -> event,
// 10-20 passes a second, each spawning processes and logging. Here each repaired object (a
// difference's kind and subject) keeps the times it was repaired; once it was repaired
// `threshold` times within `windowMs`, its next repair waits, twice as long each time, up to
// `maxMs`. One log line says what keeps being undone and how often; the status lists it.
// Pure: time comes in as an argument.

export interface BackoffPolicy {
  /** Repairs within the window before repairs are delayed. */
  readonly threshold: number;
  readonly windowMs: number;
  /** First delay; doubles with each repair past the threshold. */
  readonly baseMs: number;
  readonly maxMs: number;
}

export const REPAIR_BACKOFF: BackoffPolicy = { threshold: 3, windowMs: 60_000, baseMs: 1_000, maxMs: 30_000 };

/** One object in backoff, as the status file shows it. */
export interface BackoffEntry {
  /** What keeps being undone: a difference's `kind subject`, or `datapath`. */
  readonly key: string;
  /** Repairs (or failed attempts) within the window. */
  readonly repairs: number;
  readonly windowS: number;
  /** Epoch ms before which it is not repaired again. */
  readonly retryAt: number;
  /** What woke the passes that repaired it (ip, nft, tc, file, periodic...). */
  readonly sources: readonly string[];
}

interface Entry {
  times: number[];
  delayMs: number;
  until: number;
  sources: Set<string>;
  /** When the last log line about it was written (0: never). */
  loggedAt: number;
}

export class RepairBackoff {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly policy: BackoffPolicy = REPAIR_BACKOFF) {}

  /** Whether `key` may be repaired at `now` (false while it waits out its delay). */
  allowed(key: string, now: number): boolean {
    const e = this.entries.get(key);
    return !e || e.until <= now;
  }

  /**
   * Notes a repair of `key` at `now`, woken by `source`. Returns the log line to write when
   * this repair starts delaying it, and again at most once per `maxMs` while the fight goes
   * on; undefined otherwise (one line per fight, not one per event).
   */
  record(key: string, now: number, source: string): string | undefined {
    const p = this.policy;
    const e = this.entries.get(key) ?? { times: [], delayMs: 0, until: 0, sources: new Set<string>(), loggedAt: 0 };
    this.entries.set(key, e);
    e.times = [...e.times.filter((t) => now - t < p.windowMs), now];
    e.sources.add(source);
    if (e.times.length < p.threshold) return undefined;
    const delay = Math.min(p.maxMs, p.baseMs * 2 ** (e.times.length - p.threshold));
    e.until = now + delay;
    e.delayMs = delay;
    if (e.loggedAt > 0 && now - e.loggedAt < p.maxMs) return undefined;
    e.loggedAt = now;
    const span = ((now - e.times[0]!) / 1000).toFixed(1);
    return `something keeps undoing ${key}: repaired ${e.times.length} times in ${span} s (woken by ${[...e.sources].sort().join(', ')} events); next repair in ${delay / 1000} s`;
  }

  /**
   * `key` was found as it should be at `now`. Once no repair of it is left in the window it is
   * forgotten; returns a log line then if it had been delayed.
   */
  held(key: string, now: number): string | undefined {
    const e = this.entries.get(key);
    if (!e || e.times.some((t) => now - t < this.policy.windowMs)) return undefined;
    this.entries.delete(key);
    return e.delayMs > 0 ? `${key} held for ${this.policy.windowMs / 1000} s: repairs no longer delayed` : undefined;
  }

  /** Keys being delayed at `now` (for the status). */
  delayed(now: number): BackoffEntry[] {
    const out: BackoffEntry[] = [];
    for (const [key, e] of this.entries) {
      const repairs = e.times.filter((t) => now - t < this.policy.windowMs).length;
      if (e.delayMs > 0 && repairs > 0)
        out.push({ key, repairs, windowS: this.policy.windowMs / 1000, retryAt: e.until, sources: [...e.sources].sort() });
    }
    return out.sort((a, b) => a.key.localeCompare(b.key));
  }

  /** The earliest time after `now` at which a delayed repair may run, if any. */
  nextRetry(now: number): number | undefined {
    const times = [...this.entries.values()].map((e) => e.until).filter((t) => t > now);
    return times.length ? Math.min(...times) : undefined;
  }

  /** Keys with repairs in the window (to tell `held` about the ones no longer differing). */
  keys(): string[] {
    return [...this.entries.keys()];
  }
}
