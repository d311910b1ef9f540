// The lab's base root filesystem: a Debian tree made by debootstrap from the machine's own apt
// mirror, fixed up so every host booted from it gets its own identity, and cached under
// /var/cache/podnet/lab-base/<hash>/rootfs. The hash covers the package list and the recipe, so
// changing either builds a new base; an unchanged one is reused in a few milliseconds.
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  symlinkSync,
  openSync,
  closeSync,
} from 'node:fs';
import { join } from 'node:path';
import { run, sleep } from './exec';

/** Where bases are kept between runs (PODNET_LAB_CACHE_DIR overrides it, e.g. to time a first build). */
export const BASE_CACHE_DIR = process.env.PODNET_LAB_CACHE_DIR || '/var/cache/podnet/lab-base';

/**
 * What a lab host has installed. Node.js is Debian's own `nodejs` (18.x in bookworm), as on a
 * host that has it from apt: apply runs the agent on it (agentRuntime `auto`); tests that need a
 * host without a suitable Node ask for `bundled`, which ships podnet's.
 */
export const BASE_PACKAGES: readonly string[] = [
  'systemd',
  'systemd-sysv',
  'dbus',
  'openssh-server',
  'nodejs',
  'iproute2',
  'iputils-ping',
  'tcpdump',
  'iperf3',
  'containernetworking-plugins',
  'nftables',
  'iptables',
  'procps',
  'openvpn',
  'less',
  // Real hosts are often managed by a non-root user with sudo; the engine's tests do that too.
  'sudo',
  // modprobe: a VM lab host's kernel loads ipip, vxlan, nftables... on demand (docs/lab.md).
  'kmod',
  // `route -n`, to compare a host's table with flannel's documented one.
  'net-tools',
];

/** Files written into the base after debootstrap (path -> content). Part of the cache key. */
const BASE_FILES: Readonly<Record<string, string>> = {
  // Debian's ssh.service runs `sshd -t` before any drop-in ExecStartPre, and that fails without
  // host keys: reset the list, make the key, then test the config.
  'etc/systemd/system/ssh.service.d/podnet-lab-keygen.conf':
    '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n',
  'etc/ssh/sshd_config.d/podnet-lab.conf':
    'HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\nPermitRootLogin prohibit-password\nUseDNS no\n',
  // No real consoles in a lab host; nothing to update from the internet.
  'etc/systemd/journald.conf.d/podnet-lab.conf': '[Journal]\nRuntimeMaxUse=16M\nSystemMaxUse=32M\n',
};
const MASKED_UNITS: readonly string[] = [
  'console-getty.service',
  'getty.target',
  'apt-daily.timer',
  'apt-daily-upgrade.timer',
  'e2scrub_all.timer',
  'fstrim.timer',
  'systemd-networkd-wait-online.service',
  'iperf3.service',
];
const RECIPE_VERSION = 3;

export interface BaseImage {
  readonly hash: string;
  readonly rootfs: string;
  readonly built: boolean;
  readonly ms: number;
}

/** The Debian release to bootstrap: the machine's own. */
export function debianSuite(): string {
  try {
    const m = /^VERSION_CODENAME=(\S+)$/m.exec(readFileSync('/etc/os-release', 'utf8'));
    if (m?.[1]) return m[1].replace(/"/g, '');
  } catch {
    /* fall through */
  }
  return 'bookworm';
}

/** The machine's own Debian mirror, read from its apt sources (never hard-coded). */
export function debianMirror(): string {
  const uris: string[] = [];
  const dir = '/etc/apt/sources.list.d';
  if (existsSync(dir)) {
    for (const f of readdirSync(dir)
      .filter((n) => n.endsWith('.sources'))
      .sort()) {
      const text = readFileSync(join(dir, f), 'utf8');
      for (const stanza of text.split(/\n\s*\n/)) {
        const types = /^Types:\s*(.+)$/im.exec(stanza)?.[1] ?? '';
        const u = /^URIs:\s*(\S+)/im.exec(stanza)?.[1];
        const suites = /^Suites:\s*(.+)$/im.exec(stanza)?.[1] ?? '';
        if (!u || !/\bdeb\b/.test(types) || /^\s*Enabled:\s*no/im.test(stanza)) continue;
        if (/security/.test(u) || !suites.split(/\s+/).some((s) => !s.includes('-'))) continue;
        uris.push(u);
      }
    }
  }
  if (existsSync('/etc/apt/sources.list')) {
    for (const line of readFileSync('/etc/apt/sources.list', 'utf8').split('\n')) {
      const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
      if (m?.[1] && m[2] && !/security/.test(m[1]) && !m[2].includes('-')) uris.push(m[1]);
    }
  }
  const mirror = uris[0];
  if (!mirror) throw new Error('no Debian mirror found in /etc/apt/sources.list{,.d/*.sources}: cannot build the lab base image');
  return mirror;
}

/**
 * The package list of a base flavour: BASE_PACKAGES plus `extra` (sorted, deduplicated), so a
 * test needing a big tool (a container runtime) gets its own cached base and every other lab
 * keeps the small one. Names are checked: they go on debootstrap's command line.
 */
export function flavourPackages(extra: readonly string[] = []): string[] {
  for (const p of extra) if (!/^[a-z0-9][a-z0-9+.-]+$/.test(p)) throw new Error(`invalid Debian package name '${p}'`);
  return [...BASE_PACKAGES, ...[...new Set(extra)].filter((p) => !BASE_PACKAGES.includes(p)).sort()];
}

/** The cache key of a flavour: the recipe, the release, the architecture and the package list. */
export function baseHash(extraPackages: readonly string[] = []): string {
  const packages = flavourPackages(extraPackages);
  const recipe = JSON.stringify({
    RECIPE_VERSION,
    suite: debianSuite(),
    packages,
    files: BASE_FILES,
    masked: MASKED_UNITS,
    arch: process.arch,
  });
  return createHash('sha256').update(recipe).digest('hex').slice(0, 16);
}

/**
 * Returns the cached base (with `extraPackages` installed too, a flavour of its own), building
 * it first if needed (a few minutes at most).
 */
export async function ensureBase(log: (line: string) => void, extraPackages: readonly string[] = []): Promise<BaseImage> {
  const t0 = Date.now();
  const packages = flavourPackages(extraPackages);
  const hash = baseHash(extraPackages);
  const dir = join(BASE_CACHE_DIR, hash);
  const rootfs = join(dir, 'rootfs');
  if (existsSync(join(dir, 'complete'))) return { hash, rootfs, built: false, ms: Date.now() - t0 };

  mkdirSync(BASE_CACHE_DIR, { recursive: true });
  const lock = join(BASE_CACHE_DIR, `${hash}.lock`);
  await acquireLock(lock, log);
  try {
    if (existsSync(join(dir, 'complete'))) return { hash, rootfs, built: false, ms: Date.now() - t0 };
    const build = join(BASE_CACHE_DIR, `.build-${hash}-${process.pid}`);
    rmSync(build, { recursive: true, force: true });
    mkdirSync(build, { recursive: true });
    try {
      const mirror = debianMirror();
      const suite = debianSuite();
      log(`building lab base image ${hash} (debootstrap ${suite} from ${mirror}; about 1-2 minutes)`);
      const logFile = join(build, 'debootstrap.log');
      const r = await run(['debootstrap', '--variant=minbase', `--include=${packages.join(',')}`, suite, join(build, 'rootfs'), mirror], {
        timeoutMs: 15 * 60_000,
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
      writeFileSync(logFile, r.stdout + r.stderr);
      if (r.code !== 0) {
        const tail = (r.stdout + r.stderr).trim().split('\n').slice(-15).join('\n');
        throw new Error(`debootstrap failed (exit ${r.code}):\n${tail}`);
      }
      fixBase(join(build, 'rootfs'));
      rmSync(dir, { recursive: true, force: true });
      writeFileSync(
        join(build, 'manifest.json'),
        JSON.stringify({ hash, suite, mirror, packages, builtAt: new Date().toISOString() }, null, 2) + '\n',
      );
      writeFileSync(join(build, 'complete'), '');
      renameSync(build, dir);
      log(`base image ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${rootfs}`);
      return { hash, rootfs, built: true, ms: Date.now() - t0 };
    } catch (err) {
      rmSync(build, { recursive: true, force: true });
      throw err;
    }
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Turns a fresh debootstrap tree into a base that many distinct hosts can share. */
function fixBase(root: string): void {
  const p = (rel: string): string => join(root, rel);
  for (const rel of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
    const d = p(rel);
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) if (f !== 'partial' && f !== 'lock') rmSync(join(d, f), { recursive: true, force: true });
  }
  for (const f of readdirSync(p('var/cache/apt'))) if (f.endsWith('.bin')) rmSync(p(`var/cache/apt/${f}`));
  // Every host commits its own machine-id (written per host before boot); dbus must not keep a copy.
  writeFileSync(p('etc/machine-id'), '');
  rmSync(p('var/lib/dbus/machine-id'), { force: true });
  mkdirSync(p('var/lib/dbus'), { recursive: true });
  symlinkSync('/etc/machine-id', p('var/lib/dbus/machine-id'));
  // debootstrap copies the build machine's name; an empty file lets each host's own win.
  writeFileSync(p('etc/hostname'), '');
  for (const f of readdirSync(p('etc/ssh'))) if (f.startsWith('ssh_host_')) rmSync(p(`etc/ssh/${f}`));
  for (const [rel, text] of Object.entries(BASE_FILES)) {
    mkdirSync(join(p(rel), '..'), { recursive: true });
    writeFileSync(p(rel), text);
  }
  for (const unit of MASKED_UNITS) {
    const link = p(`etc/systemd/system/${unit}`);
    rmSync(link, { force: true });
    symlinkSync('/dev/null', link);
  }
  mkdirSync(p('root/.ssh'), { recursive: true, mode: 0o700 });
}

async function acquireLock(lock: string, log: (line: string) => void): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    // at most 20 minutes: another process is building the same base
    try {
      mkdirSync(lock);
      closeSync(openSync(join(lock, String(process.pid)), 'w'));
      return;
    } catch {
      const owner = existsSync(lock) ? readdirSync(lock)[0] : undefined;
      const alive = owner !== undefined && existsSync(`/proc/${owner}`);
      const old = existsSync(lock) && Date.now() - statSync(lock).mtimeMs > 30_000;
      if (!alive && old) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (i === 0) log(`waiting for another process building the base image (${lock})`);
      await sleep(1000);
    }
  }
  throw new Error(`timed out waiting for ${lock}`);
}
