// One VM lab host: a qemu guest booting Debian's stock kernel (see vm-image.ts) from a raw ext4
// disk made with `mkfs.ext4 -d` from the host's overlay tree (base + VM layer + identity), with
// its NIC a tap port on the lab's underlay bridge. qemu runs inside the switch namespace, where
// the tap is its only network (`-nodefaults`: no user-mode networking, nothing to the outside).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { must, sleep } from './exec';
import type { HostState, VmAccel } from './lab-state';
import { underlayMac } from './netns';
import { alive, cmdline, signal } from './procs';
import { QEMU, UNDERLAY_ENV, VM_CACHE_DIR, type VmImage } from './vm-image';

/** Guest size: enough for systemd, sshd, the agent on Node.js, iperf3 and a 100 MB file. */
const VM_MEMORY_MB = 1024;
const VM_CPUS = 2;
const VM_DISK_BYTES = 3 * 1024 ** 3; // sparse: only what mkfs and the guest write takes space
/** A working KVM guest prints "Run /init" within a second or two; a hung one never does. */
const KVM_PROBE_MS = 15_000;
const KERNEL_CMDLINE = 'root=/dev/vda rw console=ttyS0 net.ifnames=0';

/** A VM host that did not come up (qemu exited, or no SSH in time): tests skip on it, naming it. */
export class VmBootError extends Error {
  override readonly name = 'VmBootError';
}

export const vmDisk = (h: HostState): string => join(h.dir, 'disk.img');
export const consoleLog = (h: HostState): string => join(h.dir, 'console.log');

/** Writes the VM-only per-host files into the host's tree, then makes its disk from the tree. */
export async function makeVmDisk(h: HostState, prefix: number): Promise<void> {
  const env = join(h.rootDir, UNDERLAY_ENV);
  mkdirSync(join(env, '..'), { recursive: true });
  writeFileSync(env, `ADDRESS=${h.address}/${prefix}\n`);
  const disk = vmDisk(h);
  rmSync(disk, { force: true });
  closeSync(openSync(disk, 'w'));
  truncateSync(disk, VM_DISK_BYTES);
  await must(['mkfs.ext4', '-q', '-F', '-L', 'podnet-root', '-d', h.rootDir, disk], { timeoutMs: 5 * 60_000 });
}

/** The tap that is the guest's NIC: a port of br0 in the switch namespace, made before qemu opens it. */
export async function addTap(sw: string, port: string): Promise<void> {
  await must(['ip', '-n', sw, '-batch', '-'], {
    input: `tuntap add dev ${port} mode tap\nlink set ${port} master br0\nlink set ${port} up\n`,
  });
}

/** qemu's argv for `h` (exported for its unit test: no network but the tap, ever). */
export function qemuArgs(h: HostState, image: VmImage, accel: VmAccel, port: string): string[] {
  return [
    QEMU,
    '-name',
    `podnet-lab-${h.machine}`,
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    ...(accel === 'kvm' ? ['-accel', 'kvm'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max']),
    '-m',
    String(VM_MEMORY_MB),
    '-smp',
    String(VM_CPUS),
    '-chardev',
    `file,id=console,path=${consoleLog(h)},append=on`,
    '-serial',
    'chardev:console',
    '-kernel',
    image.kernel,
    '-initrd',
    image.initrd,
    '-append',
    KERNEL_CMDLINE,
    // cache=unsafe: the disk is thrown away with the lab; a guest reboot keeps what it wrote.
    '-drive',
    `file=${vmDisk(h)},if=virtio,format=raw,cache=unsafe`,
    '-netdev',
    `tap,id=underlay,ifname=${port},script=no,downscript=no`,
    '-device',
    `virtio-net-pci,netdev=underlay,mac=${underlayMac(h.address)}`,
  ];
}

/** Starts qemu in the background inside the switch namespace; returns its PID. */
export function startVm(h: HostState, image: VmImage, accel: VmAccel, sw: string, port: string): number {
  appendConsole(h, `podnet-lab: booting ${h.name} under qemu with ${accel.toUpperCase()}`);
  const log = openSync(join(h.dir, 'qemu.log'), 'a');
  // `ip netns exec` execs qemu: the PID is qemu's own.
  const child = spawn('ip', ['netns', 'exec', sw, ...qemuArgs(h, image, accel, port)], { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  if (!child.pid) throw new Error(`could not start ${QEMU} for ${h.name}`);
  return child.pid;
}

function appendConsole(h: HostState, line: string): void {
  writeFileSync(consoleLog(h), `\n${line}\n`, { flag: 'a' });
}

/** True if `pid` is still this host's qemu (its command line names this host's disk). */
export function isVmRunning(h: HostState): boolean {
  const pid = h.vm?.pid;
  if (!pid) return false;
  const c = cmdline(pid);
  return !!c && c.some((a) => a.includes(vmDisk(h))) && alive(pid);
}

/** qemu's own error output (e.g. a tap or KVM failure), for error messages. */
export function qemuLogTail(h: HostState): string {
  try {
    return readFileSync(join(h.dir, 'qemu.log'), 'utf8').trim().split('\n').slice(-5).join('\n');
  } catch {
    return '';
  }
}

// --- Which accelerator -------------------------------------------------------------------------

/**
 * The accelerator to use: PODNET_LAB_VM_ACCEL=kvm|tcg forces one; otherwise KVM when /dev/kvm
 * opens and an earlier probe on this machine (same machine kernel, qemu and guest kernel) did not
 * find it hanging, else TCG. `probe` boots the first VM host under KVM to find out.
 */
export function forcedAccel(): VmAccel | undefined {
  const v = process.env.PODNET_LAB_VM_ACCEL;
  if (v === 'kvm' || v === 'tcg') return v;
  if (v) throw new Error(`PODNET_LAB_VM_ACCEL must be kvm or tcg, not '${v}'`);
  return undefined;
}

function kvmUsable(): boolean {
  try {
    closeSync(openSync('/dev/kvm', 'r+'));
    return true;
  } catch {
    return false;
  }
}

function probeKey(image: VmImage): string {
  const machineKernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  return `${machineKernel}|${image.kernelVersion}|${QEMU}`;
}
const probeFile = (): string => join(VM_CACHE_DIR, 'kvm-probe.json');

/** What an earlier KVM probe found for this machine kernel + guest kernel, if any. */
export function knownKvmResult(image: VmImage): boolean | undefined {
  if (!kvmUsable()) return false;
  try {
    const seen = JSON.parse(readFileSync(probeFile(), 'utf8')) as Record<string, boolean>;
    return seen[probeKey(image)];
  } catch {
    return undefined;
  }
}

function recordKvmResult(image: VmImage, works: boolean): void {
  let seen: Record<string, boolean> = {};
  try {
    seen = JSON.parse(readFileSync(probeFile(), 'utf8')) as Record<string, boolean>;
  } catch {
    /* first probe */
  }
  seen[probeKey(image)] = works;
  mkdirSync(VM_CACHE_DIR, { recursive: true });
  writeFileSync(probeFile(), JSON.stringify(seen, null, 2) + '\n');
}

/**
 * Boots `h` under KVM and watches its console for the kernel handing over to the initramfs. On a
 * hang it stops that qemu and returns false (the caller boots it again with TCG).
 */
export async function probeKvm(
  h: HostState,
  image: VmImage,
  sw: string,
  port: string,
  log: (l: string) => void,
): Promise<{ works: boolean; pid?: number }> {
  const pid = startVm(h, image, 'kvm', sw, port);
  h.vm = { ...h.vm!, accel: 'kvm', pid };
  const deadline = Date.now() + KVM_PROBE_MS;
  const start = existsSync(consoleLog(h)) ? readFileSync(consoleLog(h), 'utf8').length : 0;
  while (Date.now() < deadline && isVmRunning(h)) {
    if (readFileSync(consoleLog(h), 'utf8').slice(start).includes('Run /init as init process')) {
      recordKvmResult(image, true);
      return { works: true, pid };
    }
    await sleep(250);
  }
  const why = isVmRunning(h) ? `the guest printed no "Run /init" within ${KVM_PROBE_MS / 1000} s` : `qemu exited: ${qemuLogTail(h)}`;
  log(`  KVM does not boot a Linux guest here (${why}); using TCG (software emulation)`);
  appendConsole(h, `podnet-lab: KVM probe failed (${why}); falling back to TCG`);
  await stopVms([h], 5_000);
  recordKvmResult(image, false);
  return { works: false };
}

/** Stops qemu (SIGTERM: qemu exits at once; the disk is not needed after), SIGKILL after `ms`. */
export async function stopVms(hosts: HostState[], ms: number): Promise<void> {
  const running = hosts.filter(isVmRunning);
  for (const h of running) signal(h.vm!.pid!, 'SIGTERM');
  const deadline = Date.now() + ms;
  while (running.some(isVmRunning) && Date.now() < deadline) await sleep(100);
  for (const h of running.filter(isVmRunning)) signal(h.vm!.pid!, 'SIGKILL');
  for (let i = 0; i < 50 && running.some(isVmRunning); i++) await sleep(100);
  const stuck = running.filter(isVmRunning).map((h) => h.name);
  if (stuck.length) throw new Error(`qemu still running after SIGKILL: ${stuck.join(', ')}`);
}

/** A command line for `sh -c` on the guest that runs argv exactly (ssh joins its arguments with spaces). */
export function shellJoin(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
