// What a VM lab host boots: Debian's stock kernel and initramfs (package linux-image-amd64, which
// has ipip.ko, unlike the kernels some CI machines run), plus a "VM layer" laid over the shared
// base image: the kernel's modules (only the kinds a lab host can use) and a unit that configures
// the underlay address. Cached under /var/cache/podnet/lab-vm/<kernel>-<hash>/, like the base.
//
// The kernel is the machine's own from /boot, unless PODNET_LAB_VM_KERNEL names a Debian suite
// (bookworm-backports: Linux 6.12, which the ebpf datapath needs): then linux-image-amd64 from that
// suite is installed into a throwaway copy of the base, where Debian's own postinst makes its
// initramfs, and only the kernel, initramfs and modules are kept (<suite>-<hash>/). The machine's
// /boot and apt sources are never touched.
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBase } from './base-image';
import { must, run } from './exec';

export const VM_CACHE_DIR = process.env.PODNET_LAB_VM_CACHE_DIR || '/var/cache/podnet/lab-vm';
export const QEMU = 'qemu-system-x86_64';
const SEARCH_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/**
 * Module directories (under /lib/modules/<version>/kernel) a lab host can need: networking
 * (ipip, vxlan, bridge, nftables, veth, tun, virtio-net), file systems, crypto and libraries.
 * GPU, sound, media, USB, wireless and NIC drivers for real hardware are left out: they are most
 * of the 400 MB and a guest on virtio never loads them.
 */
const MODULE_DIRS: readonly string[] = [
  'arch',
  'block',
  'crypto',
  'fs',
  'lib',
  'mm',
  'net',
  'virt',
  'drivers/block',
  'drivers/char',
  'drivers/virtio',
  'drivers/net',
];
const MODULE_DIRS_SKIPPED: readonly string[] = ['drivers/net/wireless', 'drivers/net/ethernet', 'drivers/net/can', 'drivers/net/usb'];

/** Where a VM host's underlay address is written (per host, before its disk is made). */
export const UNDERLAY_ENV = 'etc/podnet-lab/underlay.env';

// Files the VM layer adds. The guest configures eth0 itself, exactly as the nspawn hosts' eth0 is
// configured from outside: address, no default route, no IPv6; nothing manages links after that
// (no networkd, whose foreign-route cleanup would fight podnet's routes).
const VM_FILES: Readonly<Record<string, string>> = {
  'etc/systemd/system/podnet-lab-underlay.service': [
    '[Unit]',
    'Description=podnet lab: underlay address on eth0',
    'DefaultDependencies=no',
    'Before=network-pre.target ssh.service',
    'Wants=network-pre.target',
    'After=systemd-modules-load.service',
    '',
    '[Service]',
    'Type=oneshot',
    'RemainAfterExit=yes',
    `EnvironmentFile=/${UNDERLAY_ENV}`,
    'ExecStart=/usr/sbin/sysctl -q -w net.ipv6.conf.eth0.disable_ipv6=1',
    'ExecStart=/usr/sbin/ip link set lo up',
    'ExecStart=/usr/sbin/ip addr replace ${ADDRESS} dev eth0',
    'ExecStart=/usr/sbin/ip link set eth0 up',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n'),
  // sshd uses only the ed25519 key written before boot; `ssh-keygen -A` (the base's drop-in) would
  // also make RSA and ECDSA keys, which takes tens of seconds on an emulated CPU.
  'etc/systemd/system/ssh.service.d/podnet-lab-keygen.conf': '[Service]\nExecStartPre=\nExecStartPre=/usr/sbin/sshd -t\n',
  // The root file system is the virtio disk the initramfs mounted read-write.
  'etc/fstab': '/dev/vda / ext4 rw,errors=remount-ro 0 1\n',
};
const VM_LINKS: Readonly<Record<string, string>> = {
  'etc/systemd/system/multi-user.target.wants/podnet-lab-underlay.service': '/etc/systemd/system/podnet-lab-underlay.service',
};
const VM_RECIPE_VERSION = 3;

export interface VmImage {
  readonly kernelVersion: string;
  readonly kernel: string;
  readonly initrd: string;
  /** A directory tree to lay over the base (overlayfs lowerdir). */
  readonly layer: string;
}

/** A kernel to boot, where its pieces are now. */
interface KernelSource {
  readonly version: string;
  readonly kernel: string;
  readonly initrd: string;
  /** Its /lib/modules/<version> directory. */
  readonly modules: string;
}

/** The environment variable that picks the guests' kernel (see vmKernelChoice). */
export const VM_KERNEL_ENV = 'PODNET_LAB_VM_KERNEL';

/** Where the guests' kernel comes from: the machine's /boot, or linux-image-amd64 of a Debian suite. */
export type VmKernelChoice = { readonly kind: 'stock' } | { readonly kind: 'suite'; readonly suite: string };

/** Reads PODNET_LAB_VM_KERNEL: unset or `stock`, or a suite name (`bookworm-backports`); throws on anything else. */
export function vmKernelChoice(value: string | undefined = process.env[VM_KERNEL_ENV]): VmKernelChoice {
  if (!value || value === 'stock') return { kind: 'stock' };
  // It goes into an apt source line and a cache directory name: letters and dashes only.
  if (/^[a-z]+(-[a-z]+)*$/.test(value)) return { kind: 'suite', suite: value };
  throw new Error(`${VM_KERNEL_ENV} must be 'stock' or a Debian suite such as bookworm-backports, not '${value}'`);
}

/** The apt source line for `suite` on the mirror the base was built from (its sources.list's first `deb` line). */
export function suiteSourceLine(baseSourcesList: string, suite: string): string {
  const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+/m.exec(baseSourcesList);
  if (!m?.[1]) throw new Error("no 'deb' line in the lab base's /etc/apt/sources.list: cannot add a kernel suite");
  return `deb ${m[1]} ${suite} main\n`;
}

function onPath(tool: string): boolean {
  return SEARCH_PATH.some((d) => existsSync(join(d, tool)));
}

/** The newest Debian kernel in /boot that has its initramfs and modules, or undefined. */
export function stockKernel(): { version: string; kernel: string; initrd: string } | undefined {
  if (!existsSync('/boot')) return undefined;
  const v = newestKernel('/boot', '/lib/modules');
  return v ? { version: v, kernel: `/boot/vmlinuz-${v}`, initrd: `/boot/initrd.img-${v}` } : undefined;
}

/** The newest kernel version in `boot` with its initramfs there and its modules in `modules`. */
function newestKernel(boot: string, modules: string): string | undefined {
  const versions = readdirSync(boot)
    .filter((f) => f.startsWith('vmlinuz-'))
    .map((f) => f.slice('vmlinuz-'.length))
    .filter((v) => existsSync(`${boot}/initrd.img-${v}`) && existsSync(`${modules}/${v}/modules.order`))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  return versions[versions.length - 1];
}

/** Why VM lab hosts cannot boot here (what to install), or undefined if they can. */
export function vmUnavailableReason(): string | undefined {
  if (process.arch !== 'x64') return `VM lab hosts need an x86-64 machine (this is ${process.arch})`;
  if (!onPath(QEMU)) return `${QEMU} is not installed (apt-get install qemu-system-x86; scripts/ensure-deps.sh does it)`;
  if (!onPath('mkfs.ext4')) return 'mkfs.ext4 is not installed (apt-get install e2fsprogs)';
  if (!onPath('depmod')) return 'depmod is not installed (apt-get install kmod)';
  let choice: VmKernelChoice;
  try {
    choice = vmKernelChoice();
  } catch (e) {
    return (e as Error).message;
  }
  if (choice.kind === 'suite')
    return onPath('unshare') && onPath('chroot') ? undefined : 'unshare and chroot are needed (util-linux, coreutils)';
  if (!stockKernel())
    return 'no Debian kernel with initramfs and modules in /boot (apt-get install linux-image-amd64; scripts/ensure-deps.sh does it)';
  return undefined;
}

/**
 * Returns the cached VM pieces for the chosen kernel (vmKernelChoice), building them first if
 * needed: seconds for the stock kernel, a few minutes for a suite's (download and initramfs).
 */
export async function ensureVmImage(log: (line: string) => void): Promise<VmImage> {
  const choice = vmKernelChoice();
  const hash = createHash('sha256')
    .update(JSON.stringify({ VM_RECIPE_VERSION, MODULE_DIRS, MODULE_DIRS_SKIPPED, VM_FILES, VM_LINKS }))
    .digest('hex')
    .slice(0, 12);
  const stock = choice.kind === 'stock' ? stockKernel() : undefined;
  if (choice.kind === 'stock' && !stock) throw new Error(vmUnavailableReason() ?? 'no stock kernel');
  const name = choice.kind === 'suite' ? choice.suite : stock!.version;
  const dir = join(VM_CACHE_DIR, `${name}-${hash}`);
  const imageAt = (version: string): VmImage => ({
    kernelVersion: version,
    kernel: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initrd.img'),
    layer: join(dir, 'layer'),
  });
  if (existsSync(join(dir, 'complete'))) return imageAt(stock?.version ?? readFileSync(join(dir, 'kernel-version'), 'utf8').trim());

  const t0 = Date.now();
  log(`building the VM layer for kernel ${name} (${dir})`);
  const build = join(VM_CACHE_DIR, `.build-${name}-${hash}-${process.pid}`);
  rmSync(build, { recursive: true, force: true });
  mkdirSync(build, { recursive: true });
  try {
    const source = stock ? { ...stock, modules: `/lib/modules/${stock.version}` } : await installSuiteKernel(build, name, log);
    await layOut(build, source);
    // The throwaway root a suite's kernel was installed into is not part of the layer.
    rmSync(join(build, 'root'), { recursive: true, force: true });
    writeFileSync(join(build, 'kernel-version'), `${source.version}\n`);
    writeFileSync(join(build, 'complete'), '');
    rmSync(dir, { recursive: true, force: true });
    renameSync(build, dir);
    log(`VM layer for kernel ${source.version} ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return imageAt(source.version);
  } catch (err) {
    rmSync(build, { recursive: true, force: true });
    throw err;
  }
}

/** Copies the kernel, its initramfs and the filtered modules into `build`, with the VM-only files. */
async function layOut(build: string, k: KernelSource): Promise<void> {
  cpSync(k.kernel, join(build, 'vmlinuz'));
  cpSync(k.initrd, join(build, 'initrd.img'));
  const src = k.modules;
  // Debian's tree is merged-/usr (/lib -> usr/lib): the layer has the same link, or its own
  // /lib directory would hide the base's libraries.
  const dst = join(build, 'layer', 'usr', 'lib', 'modules', k.version);
  mkdirSync(dst, { recursive: true });
  symlinkSync('usr/lib', join(build, 'layer', 'lib'));
  for (const f of readdirSync(src)) if (f.startsWith('modules.')) cpSync(join(src, f), join(dst, f));
  for (const d of MODULE_DIRS) {
    if (!existsSync(join(src, 'kernel', d))) continue;
    cpSync(join(src, 'kernel', d), join(dst, 'kernel', d), {
      recursive: true,
      filter: (from) => !MODULE_DIRS_SKIPPED.some((s) => from === join(src, 'kernel', s) || from.startsWith(join(src, 'kernel', s) + '/')),
    });
  }
  // The dependency index must list only the modules that are there.
  await must(['depmod', '-b', join(build, 'layer'), k.version]);
  for (const [rel, text] of Object.entries(VM_FILES)) {
    mkdirSync(join(build, 'layer', rel, '..'), { recursive: true });
    writeFileSync(join(build, 'layer', rel), text);
  }
  for (const [rel, target] of Object.entries(VM_LINKS)) {
    mkdirSync(join(build, 'layer', rel, '..'), { recursive: true });
    symlinkSync(target, join(build, 'layer', rel));
  }
}

/**
 * Installs linux-image-amd64 from `suite` into `<build>/root`, a copy of the lab's base, and
 * returns where its kernel, initramfs (made by Debian's postinst, initramfs-tools) and modules
 * are. apt runs chrooted in a mount namespace of its own (proc, sys and /dev mounted there die
 * with it); it downloads from the base's mirror, the one the machine's apt sources name.
 */
async function installSuiteKernel(build: string, suite: string, log: (line: string) => void): Promise<KernelSource> {
  const base = await ensureBase(log);
  const root = join(build, 'root');
  log(`  installing linux-image-amd64 from ${suite} into a copy of the lab base (download and initramfs: a few minutes)`);
  await must(['cp', '-a', base.rootfs, root], { timeoutMs: 5 * 60_000 });
  const sources = suiteSourceLine(readFileSync(join(root, 'etc/apt/sources.list'), 'utf8'), suite);
  writeFileSync(join(root, 'etc/apt/sources.list.d/podnet-lab-kernel.list'), sources);
  rmSync(join(root, 'etc/resolv.conf'), { force: true });
  writeFileSync(join(root, 'etc/resolv.conf'), readFileSync('/etc/resolv.conf'));
  const apt = 'apt-get -q -y -o Acquire::Languages=none';
  const script = [
    'set -e',
    `mount -t proc proc '${root}/proc'`,
    `mount -t sysfs sysfs '${root}/sys'`,
    `mount --bind /dev '${root}/dev'`,
    `exec chroot '${root}' sh -ec '${apt} update; ${apt} install --no-install-recommends -t ${suite} linux-image-amd64 initramfs-tools'`,
  ].join('\n');
  // --kill-child: if the timeout kills unshare, apt dies with it instead of running on in a root being deleted.
  const r = await run(['unshare', '--mount', '--propagation', 'private', '--fork', '--kill-child', 'sh', '-c', script], {
    timeoutMs: 20 * 60_000,
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  writeFileSync(join(build, 'apt.log'), r.stdout + r.stderr);
  if (r.code !== 0) {
    const tail = (r.stdout + r.stderr).trim().split('\n').slice(-15).join('\n');
    throw new Error(`installing linux-image-amd64 from ${suite} failed (exit ${r.code}):\n${tail}`);
  }
  const version = newestKernel(join(root, 'boot'), join(root, 'usr/lib/modules'));
  if (!version) throw new Error(`linux-image-amd64 from ${suite} left no kernel with initramfs and modules in the copy's /boot`);
  return {
    version,
    kernel: join(root, 'boot', `vmlinuz-${version}`),
    initrd: join(root, 'boot', `initrd.img-${version}`),
    modules: join(root, 'usr/lib/modules', version),
  };
}
