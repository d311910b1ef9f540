// What a VM lab host boots: Debian's stock kernel and initramfs (package linux-image-amd64, which
// has ipip.ko, unlike the kernels some CI machines run), plus a "VM layer" laid over the shared
// base image: the kernel's modules (only the kinds a lab host can use) and a unit that configures
// the underlay address. Cached under /var/cache/podnet/lab-vm/<kernel>-<hash>/, like the base.
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { must } from './exec';

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

function onPath(tool: string): boolean {
  return SEARCH_PATH.some((d) => existsSync(join(d, tool)));
}

/** The newest Debian kernel in /boot that has its initramfs and modules, or undefined. */
export function stockKernel(): { version: string; kernel: string; initrd: string } | undefined {
  if (!existsSync('/boot')) return undefined;
  const versions = readdirSync('/boot')
    .filter((f) => f.startsWith('vmlinuz-'))
    .map((f) => f.slice('vmlinuz-'.length))
    .filter((v) => existsSync(`/boot/initrd.img-${v}`) && existsSync(`/lib/modules/${v}/modules.order`))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const v = versions[versions.length - 1];
  return v ? { version: v, kernel: `/boot/vmlinuz-${v}`, initrd: `/boot/initrd.img-${v}` } : undefined;
}

/** Why VM lab hosts cannot boot here (what to install), or undefined if they can. */
export function vmUnavailableReason(): string | undefined {
  if (process.arch !== 'x64') return `VM lab hosts need an x86-64 machine (this is ${process.arch})`;
  if (!onPath(QEMU)) return `${QEMU} is not installed (apt-get install qemu-system-x86; scripts/ensure-deps.sh does it)`;
  if (!onPath('mkfs.ext4')) return 'mkfs.ext4 is not installed (apt-get install e2fsprogs)';
  if (!onPath('depmod')) return 'depmod is not installed (apt-get install kmod)';
  if (!stockKernel())
    return 'no Debian kernel with initramfs and modules in /boot (apt-get install linux-image-amd64; scripts/ensure-deps.sh does it)';
  return undefined;
}

/** Returns the cached VM pieces for the newest stock kernel, building them first if needed (seconds). */
export async function ensureVmImage(log: (line: string) => void): Promise<VmImage> {
  const k = stockKernel();
  if (!k) throw new Error(vmUnavailableReason() ?? 'no stock kernel');
  const hash = createHash('sha256')
    .update(JSON.stringify({ VM_RECIPE_VERSION, MODULE_DIRS, MODULE_DIRS_SKIPPED, VM_FILES, VM_LINKS }))
    .digest('hex')
    .slice(0, 12);
  const dir = join(VM_CACHE_DIR, `${k.version}-${hash}`);
  const image: VmImage = {
    kernelVersion: k.version,
    kernel: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initrd.img'),
    layer: join(dir, 'layer'),
  };
  if (existsSync(join(dir, 'complete'))) return image;

  const t0 = Date.now();
  log(`building the VM layer for kernel ${k.version} (${dir})`);
  const build = join(VM_CACHE_DIR, `.build-${k.version}-${hash}-${process.pid}`);
  rmSync(build, { recursive: true, force: true });
  mkdirSync(build, { recursive: true });
  try {
    cpSync(k.kernel, join(build, 'vmlinuz'));
    cpSync(k.initrd, join(build, 'initrd.img'));
    const src = `/lib/modules/${k.version}`;
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
        filter: (from) =>
          !MODULE_DIRS_SKIPPED.some((s) => from === join(src, 'kernel', s) || from.startsWith(join(src, 'kernel', s) + '/')),
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
    writeFileSync(join(build, 'complete'), '');
    rmSync(dir, { recursive: true, force: true });
    renameSync(build, dir);
    log(`VM layer ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return image;
  } catch (err) {
    rmSync(build, { recursive: true, force: true });
    throw err;
  }
}
