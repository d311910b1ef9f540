// One lab host: a private copy-on-write root (overlayfs over the shared base), its identity
// (hostname, machine-id, ssh host key, root's authorized key), and systemd-nspawn booting systemd
// as PID 1 inside the host's network namespace.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { must, run, sleep } from './exec';
import type { HostState } from './lab-state';
import { alive, children, cmdline, signal } from './procs';

export function isMountpoint(path: string): boolean {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .some((l) => l.split(' ')[4] === path);
  } catch {
    return false;
  }
}

export const bpffsDir = (h: HostState): string => join(h.dir, 'bpffs');
export const propagateDir = (machine: string): string => `/run/systemd/nspawn/propagate/${machine}`;

/** Mounts the host's overlay root. `record` is called with each mount point before it is mounted. */
export async function mountHost(h: HostState, baseRootfs: string, record: (mountpoint: string) => void): Promise<void> {
  for (const d of ['upper', 'work', 'root']) mkdirSync(join(h.dir, d), { recursive: true });
  record(h.rootDir);
  await must([
    'mount',
    '-t',
    'overlay',
    `podnet-lab-${h.machine}`,
    '-o',
    `lowerdir=${baseRootfs},upperdir=${join(h.dir, 'upper')},workdir=${join(h.dir, 'work')}`,
    h.rootDir,
  ]);
  if (h.bpf && !h.vm) {
    // A private bpffs per host, bound to /sys/fs/bpf inside (where /sys itself is read-only).
    mkdirSync(bpffsDir(h), { recursive: true });
    record(bpffsDir(h));
    await must(['mount', '-t', 'bpf', `podnet-lab-${h.machine}`, bpffsDir(h)]);
  }
}

/** Writes the host's identity into its upper layer (only what is missing: a reboot keeps it). */
export async function personalize(h: HostState, opts: { authorizedKey: string; hostsFile: string }): Promise<void> {
  const r = (rel: string): string => join(h.rootDir, rel);
  writeFileSync(r('etc/hostname'), `${h.name}\n`);
  if (readFileSync(r('etc/machine-id'), 'utf8').trim() === '') writeFileSync(r('etc/machine-id'), `${randomBytes(16).toString('hex')}\n`);
  writeFileSync(r('etc/hosts'), opts.hostsFile);
  mkdirSync(r('root/.ssh'), { recursive: true, mode: 0o700 });
  writeFileSync(r('root/.ssh/authorized_keys'), opts.authorizedKey, { mode: 0o600 });
  // The host key is made now rather than by sshd at first boot (the base has a drop-in for that
  // too), so the lab's known_hosts is complete before the host boots.
  const key = r('etc/ssh/ssh_host_ed25519_key');
  if (!existsSync(key)) await must(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `root@${h.name}`, '-f', key]);
  chmodSync(key, 0o600);
}

export function hostPublicKey(h: HostState): string {
  return readFileSync(join(h.rootDir, 'etc/ssh/ssh_host_ed25519_key.pub'), 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
}

function nspawnArgs(h: HostState): string[] {
  return [
    'systemd-nspawn',
    '--quiet',
    '--boot',
    `--directory=${h.rootDir}`,
    `--machine=${h.machine}`,
    `--hostname=${h.name}`,
    // --private-network next to --network-namespace-path keeps CAP_NET_ADMIN and a writable
    // /proc/sys/net; --register=no needs --keep-unit when the machine runs no systemd.
    `--network-namespace-path=/run/netns/${h.netns}`,
    '--private-network',
    '--register=no',
    '--keep-unit',
    '--console=read-only',
    '--link-journal=no',
    ...(h.bpf ? ['--system-call-filter=bpf', `--bind=${bpffsDir(h)}:/sys/fs/bpf`] : []),
  ];
}

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Starts the host in the background: a small bash loop runs systemd-nspawn and boots the host
 * again when the guest reboots itself (nspawn exits 133), at most 50 times. Between boots it runs
 * `betweenBoots` (shell lines) and gives the host a fresh bpffs, so that a reboot loses what a real
 * one loses: links, routes, sysctls and pinned BPF objects. Returns the loop's PID.
 */
export function startHost(h: HostState, betweenBoots: string[], beforeBoot: string[] = []): number {
  const fresh = h.bpf
    ? [`  umount ${q(bpffsDir(h))} 2>/dev/null; mount -t bpf ${q(`podnet-lab-${h.machine}`)} ${q(bpffsDir(h))} || exit 1`]
    : [];
  const script = join(h.dir, 'run.sh');
  writeFileSync(
    script,
    [
      '#!/bin/bash',
      `# podnet lab host ${h.machine}: boots the host; boots it again after a reboot inside it.`,
      ...beforeBoot,
      'for i in $(seq 1 50); do',
      `  ${nspawnArgs(h).map(q).join(' ')}`,
      '  rc=$?',
      `  rm -rf ${q(propagateDir(h.machine))}`,
      '  echo "podnet-lab: systemd-nspawn exited with $rc"',
      '  [ "$rc" -eq 133 ] || exit "$rc"',
      ...betweenBoots.map((l) => `  ${l}`),
      ...fresh,
      'done',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  const log = openSync(join(h.dir, 'console.log'), 'a');
  const child = spawn('/bin/bash', [script], { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  if (!child.pid) throw new Error(`could not start ${script}`);
  return child.pid;
}

/** True if `pid` is still this host's runner loop (not a reused PID). */
export function isRunner(h: HostState, pid: number | undefined): pid is number {
  if (!pid) return false;
  const c = cmdline(pid);
  return !!c && c.includes(join(h.dir, 'run.sh')) && alive(pid);
}

/** This host's systemd-nspawn, found by its exact arguments (our state dir's path is in them). */
export function nspawnPid(h: HostState): number | undefined {
  return allPids().find((p) => {
    const c = cmdline(p);
    return !!c && (c[0] ?? '').endsWith('systemd-nspawn') && c.includes(`--machine=${h.machine}`) && c.includes(`--directory=${h.rootDir}`);
  });
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

/** The host's PID 1 as seen from the machine (the target for nsenter). */
export function leaderPid(h: HostState): number | undefined {
  const n = nspawnPid(h);
  if (!n) return undefined;
  return children(n).find((p) => {
    try {
      return /^NSpid:\s+\d+\s+1$/m.test(readFileSync(`/proc/${p}/status`, 'utf8'));
    } catch {
      return false;
    }
  });
}

/** Asks each host to power off (SIGTERM to nspawn), waits up to `ms`, then kills what is left. */
export async function stopHosts(hosts: HostState[], ms: number, log: (l: string) => void): Promise<void> {
  const procs = hosts.map((h) => {
    const nspawn = nspawnPid(h);
    const leader = leaderPid(h);
    const runner = isRunner(h, h.wrapperPid) ? h.wrapperPid : undefined;
    return { h, nspawn, leader, runner };
  });
  for (const p of procs) if (p.nspawn) signal(p.nspawn, 'SIGTERM');
  const live = (p: (typeof procs)[number]): boolean =>
    (!!p.nspawn && alive(p.nspawn)) || (!!p.runner && isRunner(p.h, p.runner)) || (!!p.leader && alive(p.leader));
  const deadline = Date.now() + ms;
  while (procs.some(live) && Date.now() < deadline) await sleep(200);
  for (const p of procs.filter(live)) {
    log(`host ${p.h.name} did not power off within ${ms / 1000} s: killing it; console:\n${tail(p.h)}`);
    if (p.runner && isRunner(p.h, p.runner)) signal(p.runner, 'SIGKILL');
    if (p.leader && alive(p.leader)) signal(p.leader, 'SIGKILL'); // PID 1 of its PID namespace: takes all with it
    if (p.nspawn && alive(p.nspawn)) signal(p.nspawn, 'SIGKILL');
  }
  // Under heavy load (30+ hosts on 2 cores) a killed host can take a while to be reaped.
  for (let i = 0; i < 300 && procs.some(live); i++) await sleep(100);
  const stuck = procs.filter(live).map((p) => p.h.name);
  if (stuck.length) throw new Error(`hosts still running after SIGKILL: ${stuck.join(', ')}`);
}

export async function unmount(path: string): Promise<void> {
  if (!isMountpoint(path)) return;
  for (let i = 0; i < 10; i++) {
    const r = await run(['umount', path]);
    if (r.code === 0 || !isMountpoint(path)) return;
    await sleep(300);
  }
  await must(['umount', '-l', path]);
}

export function removePropagateDir(machine: string): void {
  rmSync(propagateDir(machine), { recursive: true, force: true });
}

function tail(h: HostState): string {
  try {
    return readFileSync(join(h.dir, 'console.log'), 'utf8').split('\n').slice(-8).join('\n');
  } catch {
    return '(no console log)';
  }
}
