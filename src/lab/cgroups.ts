// A cgroup of its own for every lab host. nspawn with --keep-unit runs the host in the caller's
// cgroup, and a systemd inside treats that cgroup as its root: hosts started from one process would
// share (and fight over) one tree, and units fail with status=219/CGROUP. So each host's runner
// moves itself into <its cgroup>/podnet-lab-<machine> in the hierarchies systemd uses
// (name=systemd on cgroup v1, and cgroup2) before it starts nspawn.
import { existsSync, readFileSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from './exec';

/** The cgroup directories to make for `machine` (not yet created). */
export function hostCgroupDirs(machine: string): string[] {
  const own = new Map<string, string>(); // hierarchy key -> path of this process
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n').filter(Boolean)) {
    const [id, ctrl, path] = [line.split(':')[0], line.split(':')[1] ?? '', line.split(':').slice(2).join(':')];
    if (id === '0' && ctrl === '') own.set('cgroup2', path);
    else if (ctrl === 'name=systemd') own.set('name=systemd', path);
  }
  const dirs: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)) {
    const [pre, post] = line.split(' - ');
    const f = (pre ?? '').split(' ');
    const [fstype, , opts] = (post ?? '').split(' ');
    const key =
      fstype === 'cgroup2'
        ? 'cgroup2'
        : fstype === 'cgroup' && (opts ?? '').split(',').includes('name=systemd')
          ? 'name=systemd'
          : undefined;
    const path = key && own.get(key);
    if (!key || path === undefined) continue;
    const root = f[3] ?? '/';
    const mountpoint = f[4] ?? '';
    if (root !== '/' && !path.startsWith(root)) continue;
    const rel = root === '/' ? path : path.slice(root.length);
    const dir = join(mountpoint, rel, `podnet-lab-${machine}`);
    if (!dirs.includes(dir)) dirs.push(dir);
  }
  return dirs;
}

/** Shell lines for the runner: make the cgroups and move the runner ($$) into them. */
export function joinCgroupShell(dirs: string[]): string[] {
  return dirs.map((d) => `mkdir -p '${d}' && echo $$ > '${d}/cgroup.procs' || { echo "podnet-lab: cannot join cgroup ${d}"; exit 1; }`);
}

/** Removes a host cgroup and what its systemd left inside (cgroup dirs go with rmdir, depth first). */
export async function removeCgroupDirs(dirs: string[]): Promise<void> {
  const rm = (d: string): void => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      try {
        if (statSync(p).isDirectory()) rm(p);
      } catch {
        /* gone */
      }
    }
    try {
      rmdirSync(d);
    } catch {
      /* still busy: retried below */
    }
  };
  for (let i = 0; i < 20; i++) {
    for (const d of dirs) rm(d);
    if (dirs.every((d) => !existsSync(d))) return;
    await sleep(250);
  }
  const left = dirs.filter((d) => existsSync(d));
  if (left.length) throw new Error(`cgroups not removed (processes left?): ${left.join(', ')}`);
}
