// What wakes the reconciler: netlink (ip monitor), nftables (nft monitor), tc filter
// changes (tc monitor), subnet.env's directory and the CNI config directory. Each is a long-running reader whose
// every line means "something changed"; the reconciler decides what, by diffing.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';

const LEGACY_FILTER_WATCH = [
  'last=; while :; do cur=',
  '  if [ -r /proc/net/ip_tables_names ]; then while read -r t; do [ "$t" = filter ] && cur=$(iptables-legacy-save -t filter 2>/dev/null | grep -v "^#"); done < /proc/net/ip_tables_names; fi',
  '  [ "$cur" != "$last" ] && { last=$cur; echo changed; }',
  '  sleep 0.2',
  'done',
].join('\n');

export class ChangeWatcher {
  private readonly children: ChildProcess[] = [];
  /** Watched directories, with the inode watched: a directory removed and made again is a new one. */
  private readonly dirs = new Map<string, { watcher: FSWatcher; ino: number } | undefined>();
  private timer: NodeJS.Timeout | undefined;
  private pending = new Set<string>();
  private stopped = false;

  /** `onChange` gets every source that fired during the debounce window, not just the first. */
  constructor(
    private readonly onChange: (sources: ReadonlySet<string>) => void,
    private readonly debounceMs = 30,
  ) {}

  /** Watches the directories of `files` too (each made if missing: /run/flannel is ours). */
  start(files: readonly string[]): void {
    // netconf: per-interface and global forwarding changes (sysctl -w, sysctl --system).
    this.follow('ip', ['monitor', 'link', 'address', 'route', 'netconf']);
    this.follow('nft', ['monitor']);
    this.follow('tc', ['monitor']);
    // iptables-legacy changes send no event at all: look at its filter table (only where it
    // exists) every 0.2 s, and speak only when it changed.
    this.follow('sh', ['-c', LEGACY_FILTER_WATCH], 'iptables');
    for (const file of files) {
      try {
        mkdirSync(dirname(file), { recursive: true });
      } catch {
        // Not ours to make (read-only here): watched once it exists.
      }
      this.dirs.set(dirname(file), undefined);
    }
    this.rearm();
  }

  /**
   * (Re)watches every directory that is not watched yet or was replaced (removed, then made
   * again by the reconciler: the old watch saw the removal and nothing after). The agent calls
   * it after every reconcile pass; a directory still missing waits for the next one.
   */
  rearm(): void {
    if (this.stopped) return;
    for (const [dir, current] of this.dirs) {
      try {
        const ino = statSync(dir).ino;
        if (current?.ino === ino) continue;
        current?.watcher.close();
        const watcher = watch(dir, () => this.fire('file'));
        watcher.on('error', () => undefined);
        this.dirs.set(dir, { watcher, ino });
      } catch {
        this.dirs.set(dir, undefined);
      }
    }
  }

  /** `source`: the name the reconciler is told (default: the command's). */
  private follow(file: string, args: string[], source = file): void {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    child.on('error', () => undefined); // a missing tool only means one fewer trigger
    child.stdout?.on('data', () => this.fire(source));
    child.on('exit', () => {
      // Monitors should live as long as the agent; restart one that dies, a second later.
      if (!this.stopped) setTimeout(() => !this.stopped && this.follow(file, args, source), 1000).unref();
    });
    this.children.push(child);
  }

  private fire(source: string): void {
    this.pending.add(source);
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const sources = this.pending;
      this.pending = new Set();
      this.onChange(sources);
    }, this.debounceMs);
  }

  stop(): void {
    this.stopped = true;
    for (const c of this.children) c.kill();
    for (const d of this.dirs.values()) d?.watcher.close();
    if (this.timer) clearTimeout(this.timer);
  }
}
