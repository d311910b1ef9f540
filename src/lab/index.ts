// podnet lab: real Debian hosts (systemd as PID 1, sshd) on one machine, on a bridged underlay
// in namespaces of their own, for podnet's tests and demo. See docs/lab.md.
import { existsSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBase } from './base-image';
import { hostCgroupDirs, joinCgroupShell, removeCgroupDirs } from './cgroups';
import { run, sleep } from './exec';
import type { CommandResult } from '../host/command-result';
import {
  DEFAULT_HOSTS,
  MAX_HOSTS,
  UNDERLAY_PREFIX,
  WORKSTATION_ADDRESS,
  hostAddress,
  hostDir,
  hostName,
  hostNetns,
  labStateDir,
  machineName,
  routerAddress,
  routerNetns,
  switchNetns,
  switchPort,
  validateLabName,
  workstationNetns,
} from './lab-config';
import { loadState, saveState, type HostState, type LabState, type VmAccel } from './lab-state';
import {
  addNetns,
  delNetns,
  listNetns,
  netnsExists,
  plugIn,
  replugShell,
  setUpRouter,
  setupSwitch,
  type Cable,
  type PathRouter,
} from './netns';
import {
  hostPublicKey,
  isMountpoint,
  isRunner,
  leaderPid,
  mountHost,
  nspawnPid,
  personalize,
  removePropagateDir,
  startHost,
  stopHosts,
  unmount,
} from './nspawn-host';
import {
  cniEnv,
  conflistFromSubnetEnv,
  firstConfigFile,
  parseConfList,
  pluginStdin,
  POD_CACHE_DIR,
  podIpFromResult,
  validatePodName,
  type ConfList,
  type PodRecord,
  type RuntimeConfig,
} from './pods';
import { CNI_BIN_DIR, DEFAULT_CNI_CONF_DIR, SUBNET_ENV_PATH } from '../model';
import { ensureClientKey, sshOptions, trySsh, writeKnownHosts } from './ssh';
import { raiseInotify, releaseInotify } from './sysctl';
import { applyProfile, nicOf, parseProfile, profilePackages } from './profiles';
import {
  VmBootError,
  addTap,
  consoleLog,
  forcedAccel,
  isVmRunning,
  knownKvmResult,
  makeVmDisk,
  probeKvm,
  qemuLogTail,
  shellJoin,
  startVm,
  stopVms,
} from './vm-host';
import { ensureVmImage, vmUnavailableReason, type VmImage } from './vm-image';

export { DEFAULT_LAB_NAME } from './lab-config';
export { VmBootError } from './vm-host';
export { sshOptions } from './ssh';

/**
 * A lab host. `kind` 'nspawn': a systemd-nspawn container on the machine's kernel, `netns` its
 * network namespace, `rootDir` its live root. `kind` 'vm': a qemu guest on Debian's stock kernel,
 * reached over SSH; `rootDir` is only the tree its disk was made from (unmounted; writing there
 * does not reach the guest) and `netns` is not used (its NIC is a tap in the switch namespace).
 */
export interface LabHost {
  readonly name: string;
  readonly address: string;
  readonly netns: string;
  readonly rootDir: string;
  readonly bpf: boolean;
  readonly kind: 'nspawn' | 'vm';
  /** nspawn hosts: the host profile it was made with (profiles.ts). */
  readonly profile?: string;
  /** A `pmtu<N>` host: the router its cable runs through (netns.ts). */
  readonly router?: PathRouter;
  /** VM hosts: the accelerator their guest runs with. */
  readonly accel?: VmAccel;
}
export interface LabInfo {
  readonly name: string;
  readonly stateDir: string;
  readonly hosts: readonly LabHost[];
  readonly workstation: { readonly netns: string; readonly address: string };
  readonly switchNetns: string;
  readonly sshKeyPath: string;
  readonly knownHostsPath: string;
}
export interface ExecOptions {
  input?: string;
  timeoutMs?: number;
}
export interface LabUpOptions {
  name: string;
  hosts?: number;
  noBpfHosts?: string[];
  /** Host name -> host profile (profiles.ts), e.g. { node1: 'docker', node2: 'ens33-mtu1450' }. */
  profiles?: Readonly<Record<string, string>>;
  /** Hosts to boot as qemu guests with Debian's stock kernel instead of nspawn containers. */
  vmHosts?: string[];
  log?: (line: string) => void;
  /** Debian packages beyond the base's (e.g. `podman`): a base flavour of its own, cached by its package list. */
  extraPackages?: string[];
}

const HOST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Why this machine cannot run a lab, or undefined if it can. */
export function labUnavailableReason(): string | undefined {
  if (process.platform !== 'linux') return `the lab needs Linux (this is ${process.platform})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    return 'the lab needs root (network namespaces, mounts, systemd-nspawn)';
  for (const [tool, pkg] of [
    ['systemd-nspawn', 'systemd-container'],
    ['debootstrap', 'debootstrap'],
    ['ip', 'iproute2'],
    ['ssh', 'openssh-client'],
    ['nsenter', 'util-linux'],
  ] as const) {
    if (!HOST_PATH.split(':').some((d) => existsSync(join(d, tool))))
      return `${tool} is not installed (apt-get install ${pkg}; scripts/ensure-deps.sh does it)`;
  }
  if (!readFileSync('/proc/filesystems', 'utf8').includes('overlay')) return 'the kernel has no overlayfs';
  return undefined;
}

/** Why this machine cannot run a lab with VM hosts (qemu, the stock kernel...), or undefined if it can. */
export function labVmUnavailableReason(): string | undefined {
  return labUnavailableReason() ?? vmUnavailableReason();
}

const kindOf = (h: HostState): 'nspawn' | 'vm' => (h.vm ? 'vm' : 'nspawn');

function toInfo(s: LabState): LabInfo {
  return {
    name: s.name,
    stateDir: s.stateDir,
    hosts: s.hosts.map((h) => ({
      name: h.name,
      address: h.address,
      netns: h.netns,
      rootDir: h.rootDir,
      bpf: h.bpf,
      kind: kindOf(h),
      ...(h.profile ? { profile: h.profile } : {}),
      ...(routerOf(s.name, h) ? { router: routerOf(s.name, h) } : {}),
      ...(h.vm?.accel ? { accel: h.vm.accel } : {}),
    })),
    workstation: { ...s.workstation },
    switchNetns: s.switchNetns,
    sshKeyPath: s.sshKeyPath,
    knownHostsPath: s.knownHostsPath,
  };
}

/** The router a `pmtu<N>` host's cable runs through, from its profile; undefined for other hosts. */
function routerOf(lab: string, h: Pick<HostState, 'name' | 'index' | 'profile'>): PathRouter | undefined {
  const mtu = h.profile ? parseProfile(h.profile).pathMtu : undefined;
  return mtu === undefined ? undefined : { netns: routerNetns(lab, h.name), address: routerAddress(h.index), mtu };
}

/** An nspawn host's cable: its NIC per its profile, to its switch port or through its router. */
function cableOf(state: LabState, h: HostState): Cable {
  const router = routerOf(state.name, h);
  return {
    netns: h.netns,
    sw: state.switchNetns,
    port: switchPort(h.index),
    address: h.address,
    prefix: UNDERLAY_PREFIX,
    nic: nicOf(h.profile),
    ...(router ? { router } : {}),
  };
}

export function readLab(name: string): LabInfo | undefined {
  const s = loadState(name);
  return s ? toInfo(s) : undefined;
}

/** Builds (or reuses) the base, then the network, then boots every host; resolves when all accept SSH. */
export async function labUp(opts: LabUpOptions): Promise<LabInfo> {
  const log = opts.log ?? (() => undefined);
  const name = opts.name;
  validateLabName(name);
  const count = opts.hosts ?? DEFAULT_HOSTS;
  if (!Number.isInteger(count) || count < 1 || count > MAX_HOSTS) throw new Error(`--hosts must be 1..${MAX_HOSTS}`);
  const names = Array.from({ length: count }, (_, i) => hostName(i));
  const vmHosts = opts.vmHosts ?? [];
  for (const h of [...(opts.noBpfHosts ?? []), ...vmHosts])
    if (!names.includes(h)) throw new Error(`no host '${h}' in a lab of ${count} (hosts: ${names[0]}..${names[count - 1]})`);
  const clash = vmHosts.filter((h) => (opts.noBpfHosts ?? []).includes(h));
  if (clash.length) throw new Error(`--no-bpf applies to nspawn hosts only; VM hosts run their own kernel: ${clash.join(', ')}`);
  for (const [h, p] of Object.entries(opts.profiles ?? {})) {
    if (!names.includes(h))
      throw new Error(`--profile ${h}=${p}: no host '${h}' in a lab of ${count} (hosts: ${names[0]}..${names[count - 1]})`);
    if (vmHosts.includes(h)) throw new Error(`--profile ${h}=${p}: profiles apply to nspawn hosts only, not to VM host ${h}`);
    if (parseProfile(p).pathMtu !== undefined) routerAddress(names.indexOf(h)); // throws for a host index without a free router address
  }
  const why = labUnavailableReason();
  if (why) throw new Error(`cannot run a lab here: ${why}`);
  const whyVm = vmHosts.length ? vmUnavailableReason() : undefined;
  if (whyVm) throw new Error(`cannot boot VM hosts (--vm ${vmHosts.join(',')}) here: ${whyVm}`);

  // Refuse when anything of that name exists.
  if (loadState(name))
    throw new Error(
      `lab '${name}' is up or half made (${join(labStateDir(name), 'state.json')}); run 'podnet lab down --name ${name}' first`,
    );
  const wanted = [
    switchNetns(name),
    workstationNetns(name),
    ...names.map((h) => hostNetns(name, h)),
    ...names.flatMap((h, index) => routerOf(name, { name: h, index, profile: opts.profiles?.[h] })?.netns ?? []),
  ];
  const taken = wanted.filter((n) => netnsExists(n));
  if (taken.length) throw new Error(`network namespaces already exist: ${taken.join(', ')}; lab '${name}' cannot use them`);
  const stateDir = labStateDir(name);
  if (existsSync(stateDir)) {
    const mounted = mountsUnder(stateDir);
    if (mounted.length) throw new Error(`mounts exist under ${stateDir} with no state file: ${mounted.join(', ')}`);
    rmSync(stateDir, { recursive: true, force: true }); // leftovers of a lab that was taken down
  }

  const t0 = Date.now();
  // Every host gets the same base: the services of its packages a host's profile does not ask for are masked there.
  const basePackages = [
    ...new Set([...(opts.extraPackages ?? []), ...Object.values(opts.profiles ?? {}).flatMap((p) => profilePackages(parseProfile(p)))]),
  ];
  const base = await ensureBase(log, basePackages);
  const vmImage = vmHosts.length ? await ensureVmImage(log) : undefined;
  mkdirSync(stateDir, { recursive: true });
  const state: LabState = {
    version: 1,
    name,
    status: 'starting',
    createdAt: new Date().toISOString(),
    stateDir,
    baseHash: base.hash,
    baseRootfs: base.rootfs,
    hosts: names.map((h, i) => {
      const dir = hostDir(name, h);
      return {
        name: h,
        index: i,
        address: hostAddress(i),
        netns: hostNetns(name, h),
        machine: machineName(name, h),
        dir,
        rootDir: join(dir, 'root'),
        bpf: !(opts.noBpfHosts ?? []).includes(h),
        ...(opts.profiles?.[h] ? { profile: opts.profiles[h] } : {}),
        ...(vmImage && vmHosts.includes(h) ? { vm: { kernel: vmImage.kernelVersion } } : {}),
      };
    }),
    workstation: { netns: workstationNetns(name), address: WORKSTATION_ADDRESS },
    switchNetns: switchNetns(name),
    sshKeyPath: join(stateDir, 'id_ed25519'),
    knownHostsPath: join(stateDir, 'known_hosts'),
    made: { netns: [], mounts: [], propagateDirs: [] },
  };
  saveState(state);
  try {
    const before = Number(readFileSync('/proc/sys/fs/inotify/max_user_instances', 'utf8'));
    const set = raiseInotify(name, count);
    if (set) {
      state.made.inotifyInstancesBefore = before;
      state.made.inotifyInstancesSet = set;
      log(`fs.inotify.max_user_instances ${before} -> ${set} while the lab is up`);
    }
    saveState(state);

    const authorizedKey = await ensureClientKey(state.sshKeyPath, name);
    const record = (ns: string): void => {
      state.made.netns.push(ns);
      saveState(state);
    };
    record(state.switchNetns);
    await addNetns(state.switchNetns);
    await setupSwitch(state.switchNetns);
    record(state.workstation.netns);
    await addNetns(state.workstation.netns);
    await plugIn({
      netns: state.workstation.netns,
      sw: state.switchNetns,
      port: 'ws',
      address: WORKSTATION_ADDRESS,
      prefix: UNDERLAY_PREFIX,
    });

    const hostsFile = [
      '127.0.0.1\tlocalhost',
      '::1\tlocalhost ip6-localhost ip6-loopback',
      `${WORKSTATION_ADDRESS}\tworkstation`,
      ...state.hosts.map((h) => `${h.address}\t${h.name}`),
      '',
    ].join('\n');
    const vmKeys = new Map<string, string>();
    const hostKeys = (): { address: string; key: string }[] =>
      state.hosts.map((h) => ({ address: h.address, key: vmKeys.get(h.name) ?? hostPublicKey(h) }));
    for (const h of state.hosts) {
      if (h.vm) {
        // The guest's tree: the VM layer (stock kernel's modules) over the base, then its identity; its disk is made from it.
        await mountHost(h, `${vmImage!.layer}:${base.rootfs}`, (m) => {
          state.made.mounts.push(m);
          saveState(state);
        });
        await personalize(h, { authorizedKey, hostsFile });
        // No profile (VM hosts take none), but the same masks as an nspawn host without one: the
        // services of packages the lab's base holds for other hosts' profiles must not run here.
        applyProfile(h.rootDir, undefined, basePackages);
        vmKeys.set(h.name, hostPublicKey(h)); // its tree is unmounted once the disk is made
        await makeVmDisk(h, UNDERLAY_PREFIX);
        await unmount(h.rootDir);
        continue;
      }
      const router = routerOf(name, h);
      if (router) {
        record(router.netns);
        await addNetns(router.netns);
        await setUpRouter(router, state.switchNetns, switchPort(h.index), h.address, UNDERLAY_PREFIX, nicOf(h.profile));
      }
      record(h.netns);
      await addNetns(h.netns);
      await plugIn(cableOf(state, h));
      await mountHost(h, base.rootfs, (m) => {
        state.made.mounts.push(m);
        saveState(state);
      });
      await personalize(h, { authorizedKey, hostsFile });
      applyProfile(h.rootDir, h.profile ? parseProfile(h.profile) : undefined, basePackages);
    }
    writeKnownHosts(state.knownHostsPath, hostKeys());
    log(`network and ${count} host roots ready after ${((Date.now() - t0) / 1000).toFixed(1)} s; booting`);

    for (const h of state.hosts) {
      if (h.vm) continue;
      state.made.propagateDirs.push(h.machine);
      const cgroups = hostCgroupDirs(h.machine);
      (state.made.cgroups ??= []).push(...cgroups);
      saveState(state);
      h.wrapperPid = startHost(h, replugShell(cableOf(state, h)), joinCgroupShell(cgroups));
      saveState(state);
    }
    if (vmImage) await bootVms(state, vmImage, log);
    await waitReady(state, log, t0);
    // Check the keys once more, now that sshd has seen them (the base's keygen drop-in keeps existing ones).
    writeKnownHosts(state.knownHostsPath, hostKeys());
    state.status = 'up';
    saveState(state);
    log(`lab '${name}' up: ${count} hosts in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return toInfo(state);
  } catch (err) {
    state.status = 'failed';
    saveState(state);
    log(`lab '${name}' failed to come up: ${err instanceof Error ? err.message : String(err)}; taking it down`);
    await labDown(name, log).catch((e: unknown) => log(`cleanup after failure: ${String(e)}`));
    throw err;
  }
}

/**
 * Boots the VM hosts: taps on the switch, then qemu with KVM if it is known (or, booting the first
 * guest, found) to work here, else TCG. PODNET_LAB_VM_ACCEL=kvm|tcg skips the probe.
 */
async function bootVms(state: LabState, image: VmImage, log: (l: string) => void): Promise<void> {
  const vms = state.hosts.filter((h) => h.vm);
  for (const h of vms) await addTap(state.switchNetns, switchPort(h.index));
  let accel = forcedAccel() ?? (knownKvmResult(image) === false ? 'tcg' : undefined);
  const first = vms[0]!;
  if (!accel) {
    log(`  probing KVM with ${first.name}`);
    const r = await probeKvm(first, image, state.switchNetns, switchPort(first.index), log);
    saveState(state);
    accel = r.works ? 'kvm' : 'tcg';
  }
  for (const h of vms) {
    if (isVmRunning(h)) continue; // the probe's guest, which KVM boots
    h.vm = { ...h.vm!, accel };
    saveState(state); // before qemu runs: down must know the host is a VM
    h.vm.pid = startVm(h, image, accel, state.switchNetns, switchPort(h.index));
    saveState(state);
  }
  log(
    `  ${vms.length} VM host(s) booting with ${accel.toUpperCase()}${accel === 'tcg' ? ' (software emulation: about a minute or two)' : ''}`,
  );
}

/** How long a VM guest may take to accept SSH: TCG boots Debian's kernel and systemd slowly. */
const VM_BOOT_MS = 300_000;

const hostRunning = (h: HostState): boolean => (h.vm ? isVmRunning(h) : isRunner(h, h.wrapperPid));
const hostStarted = (h: HostState): boolean => (h.vm ? isVmRunning(h) : leaderPid(h) !== undefined);

async function waitReady(state: LabState, log: (l: string) => void, t0: number): Promise<void> {
  const nspawnDeadline = Date.now() + 60_000 + 3_000 * state.hosts.length;
  const vmDeadline = Date.now() + VM_BOOT_MS;
  // VM hosts first: each waits on its own worker, as their boots overlap.
  const pending = [...state.hosts].sort((a, b) => Number(!!b.vm) - Number(!!a.vm));
  const workers = Math.max(3, state.hosts.filter((h) => h.vm).length + 1);
  const worker = async (): Promise<void> => {
    for (let h = pending.shift(); h; h = pending.shift()) {
      let last = '';
      const deadline = h.vm ? vmDeadline : nspawnDeadline;
      for (let attempt = 0; ; attempt++) {
        const Failure = h.vm ? VmBootError : Error;
        if (!hostRunning(h))
          throw new Failure(`host ${h.name} stopped while booting; ${h.vm ? `qemu: ${qemuLogTail(h)}\n` : ''}console:\n${consoleTail(h)}`);
        if (Date.now() > deadline)
          throw new Failure(`host ${h.name} did not accept SSH in time (${last}); console (${consoleLog(h)}):\n${consoleTail(h)}`);
        if (hostStarted(h)) {
          const r = await trySsh(state.workstation.netns, state.sshKeyPath, state.knownHostsPath, h.address);
          if (r.ok) break;
          last = r.err;
        }
        await sleep(Math.min(250 + attempt * 50, 1000));
      }
      log(`  ${h.name} (${h.address}) accepts SSH after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
}

function consoleTail(h: HostState): string {
  try {
    return readFileSync(join(h.dir, 'console.log'), 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '(no console log)';
  }
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(dir + '/'));
}

/** Stops every host, unmounts, deletes the namespaces: exactly what the state file says `up` made. */
export async function labDown(name: string, log: (line: string) => void = () => undefined): Promise<void> {
  validateLabName(name);
  const state = loadState(name);
  if (!state) return;
  state.status = 'stopping';
  saveState(state);
  await stopVms(
    state.hosts.filter((h) => h.vm),
    5_000,
  );
  await stopHosts(
    state.hosts.filter((h) => !h.vm),
    15_000 + 300 * state.hosts.length,
    log,
  );
  for (const m of state.made.propagateDirs) removePropagateDir(m);
  await removeCgroupDirs(state.made.cgroups ?? []);
  for (const m of [...state.made.mounts].reverse()) await unmount(m);
  for (const ns of [...state.made.netns].reverse()) await delNetns(ns);
  releaseInotify(name);
  const left = mountsUnder(state.stateDir);
  if (left.length) throw new Error(`still mounted, not removing ${state.stateDir}: ${left.join(', ')}`);
  const nsLeft = state.made.netns.filter((n) => netnsExists(n));
  if (nsLeft.length) throw new Error(`namespaces not removed: ${nsLeft.join(', ')}`);
  rmSync(state.stateDir, { recursive: true, force: true });
}

/** `pid`: the nspawn host's PID 1, or a VM host's qemu. */
export interface HostStatus {
  name: string;
  address: string;
  running: boolean;
  pid?: number;
  bpf: boolean;
  kind: 'nspawn' | 'vm';
  accel?: VmAccel;
}
export interface LabStatus {
  name: string;
  status: LabState['status'] | 'down';
  hosts: HostStatus[];
  info?: LabInfo;
}

export function labStatus(name: string): LabStatus {
  validateLabName(name);
  const s = loadState(name);
  if (!s) return { name, status: 'down', hosts: [] };
  return {
    name,
    status: s.status,
    info: toInfo(s),
    hosts: s.hosts.map((h) => {
      const pid = h.vm ? (isVmRunning(h) ? h.vm.pid : undefined) : leaderPid(h);
      return {
        name: h.name,
        address: h.address,
        running: pid !== undefined,
        ...(pid ? { pid } : {}),
        bpf: h.bpf,
        kind: kindOf(h),
        ...(h.vm?.accel ? { accel: h.vm.accel } : {}),
      };
    }),
  };
}

/** A running host: an nspawn host with its PID 1 (`leader`), or a VM host with qemu running. */
type RunningHost =
  | { state: LabState; h: HostState; leader: number }
  | { state: LabState; h: HostState & { vm: NonNullable<HostState['vm']> }; leader?: undefined };

function hostOf(name: string, host: string): RunningHost {
  const state = loadState(name);
  if (!state) throw new Error(`no lab named '${name}' is up`);
  const h = state.hosts.find((x) => x.name === host);
  if (!h) throw new Error(`lab '${name}' has no host '${host}' (hosts: ${state.hosts.map((x) => x.name).join(', ')})`);
  if (h.vm) {
    if (!isVmRunning(h)) throw new Error(`VM host ${host} of lab '${name}' is not running (qemu: ${qemuLogTail(h) || 'no output'})`);
    return { state, h: h as HostState & { vm: NonNullable<HostState['vm']> } };
  }
  const leader = leaderPid(h);
  if (!leader) throw new Error(`host ${host} of lab '${name}' is not running`);
  return { state, h, leader };
}

const HOST_ENV = ['/usr/bin/env', '-i', `PATH=${HOST_PATH}`, 'HOME=/root', 'LANG=C.UTF-8', 'TERM=dumb'];

/**
 * The argv that runs `argv` inside a host as root, with a clean environment. An nspawn host is
 * entered with nsenter (its mount, network, PID, UTS, IPC and cgroup namespaces); a VM host is
 * reached over SSH from the workstation namespace (stdin, stdout, stderr and the exit code pass through).
 */
export function hostCommand(name: string, host: string, argv: string[]): string[] {
  const r = hostOf(name, host);
  if (r.leader === undefined) {
    // An emulated guest under load can take longer than sshOptions' 3 s to send its banner (ssh takes an option's first value).
    return [
      'ip',
      'netns',
      'exec',
      r.state.workstation.netns,
      'ssh',
      '-o',
      'ConnectTimeout=30',
      ...sshOptions(r.state.sshKeyPath, r.state.knownHostsPath),
      `root@${r.h.address}`,
      shellJoin([...HOST_ENV, ...argv]),
    ];
  }
  return ['nsenter', `--target=${r.leader}`, '--all', '--root', '--wd', ...HOST_ENV, ...argv];
}

/**
 * Runs a command inside a host, as root with the machine's privileges (it is entered with
 * nsenter, so nspawn's seccomp filter does not apply to it; run `systemd-run --wait --pipe`
 * inside to get exactly what the host's own services get).
 */
export async function labExec(name: string, host: string, argv: string[], opts: ExecOptions = {}): Promise<CommandResult> {
  return run(hostCommand(name, host, argv), { input: opts.input, timeoutMs: opts.timeoutMs ?? 60_000 });
}

export function wsCommand(name: string, argv: string[]): string[] {
  const state = loadState(name);
  if (!state) throw new Error(`no lab named '${name}' is up`);
  return ['ip', 'netns', 'exec', state.workstation.netns, ...argv];
}

/** Runs a command on the workstation (its own namespace: 192.168.0.1, no default route). */
export async function wsExec(name: string, argv: string[], opts: ExecOptions = {}): Promise<CommandResult> {
  return run(wsCommand(name, argv), { input: opts.input, timeoutMs: opts.timeoutMs ?? 60_000 });
}

/** ssh from the workstation to a host with the lab's key and strict host key checking. */
export async function sshExec(name: string, host: string, command: string, opts: ExecOptions = {}): Promise<CommandResult> {
  const { state, h } = hostOf(name, host);
  return wsExec(name, ['ssh', ...sshOptions(state.sshKeyPath, state.knownHostsPath), `root@${h.address}`, command], opts);
}

/**
 * Reboots a host from inside (`systemctl reboot`) and waits until it accepts SSH again. Like a
 * real reboot, the host keeps its disk (upper layer) but loses its runtime network state, pods and
 * pinned BPF objects: it comes back in a fresh network namespace with only eth0 configured.
 */
export async function hostRestart(name: string, host: string, opts: { timeoutMs?: number } = {}): Promise<void> {
  const r = hostOf(name, host);
  if (r.leader === undefined) return vmRestart(name, r.h, opts.timeoutMs ?? VM_BOOT_MS);
  const { state, h, leader } = r;
  await labExec(name, host, ['systemctl', 'reboot'], { timeoutMs: 10_000 });
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    if (!isRunner(h, h.wrapperPid)) throw new Error(`host ${host} did not come back after reboot; console:\n${consoleTail(h)}`);
    const now = leaderPid(h);
    if (now && now !== leader && (await trySsh(state.workstation.netns, state.sshKeyPath, state.knownHostsPath, h.address)).ok) return;
    if (Date.now() > deadline) throw new Error(`host ${host} did not accept SSH within ${(opts.timeoutMs ?? 60_000) / 1000} s of a reboot`);
    await sleep(250);
  }
}

/** A VM host reboots inside qemu (same disk, new kernel boot): done when SSH answers with a new boot id. */
async function vmRestart(name: string, h: HostState, timeoutMs: number): Promise<void> {
  const bootId = async (): Promise<string | undefined> => {
    const r = await labExec(name, h.name, ['cat', '/proc/sys/kernel/random/boot_id'], { timeoutMs: 40_000 }).catch(() => undefined);
    return r?.code === 0 ? r.stdout.trim() : undefined;
  };
  const before = await bootId();
  if (!before) throw new Error(`host ${h.name} does not answer over SSH; not rebooting it`);
  await labExec(name, h.name, ['systemctl', 'reboot'], { timeoutMs: 40_000 }); // the connection may drop: that is fine
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!isVmRunning(h)) throw new Error(`qemu of ${h.name} exited during a reboot: ${qemuLogTail(h)}; console:\n${consoleTail(h)}`);
    const now = await bootId();
    if (now && now !== before) return;
    if (Date.now() > deadline)
      throw new Error(`host ${h.name} did not accept SSH within ${timeoutMs / 1000} s of a reboot; console:\n${consoleTail(h)}`);
    await sleep(1000);
  }
}

export interface PodAddOptions {
  /** Host ports to publish, handed to plugins that declare the `portMappings` capability (portmap). */
  readonly portMappings?: RuntimeConfig['portMappings'];
  /** The CNI config directory to read (default /etc/cni/net.d, as runtimes do). */
  readonly confDir?: string;
}

/**
 * The config a runtime would use on `host`: the first config file of `confDir`. A host without
 * one (podnet not applied, the lab's own tests write subnet.env by hand) gets the conflist
 * podnet would install, derived from subnet.env; with neither, a message saying what to do.
 */
async function hostCniConfig(name: string, host: string, confDir: string): Promise<{ file: string; list: ConfList }> {
  const listing = await labExec(name, host, ['sh', '-c', `ls -1A ${confDir} 2>/dev/null; echo @@; cat ${SUBNET_ENV_PATH} 2>/dev/null`]);
  const [names = '', subnetEnv = ''] = listing.stdout.split('@@\n');
  const first = firstConfigFile(names.split('\n').filter(Boolean));
  if (first) {
    const file = `${confDir}/${first}`;
    const text = await labExec(name, host, ['cat', file]);
    if (text.code !== 0) throw new Error(`cannot read ${host}:${file}: ${text.stderr.trim()}`);
    return { file, list: parseConfList(text.stdout, file) };
  }
  if (!subnetEnv.trim()) {
    throw new Error(
      `${host} has no CNI config in ${confDir} and no ${SUBNET_ENV_PATH}: apply podnet to the lab first (its agent writes both), or write subnet.env yourself`,
    );
  }
  return { file: SUBNET_ENV_PATH, list: parseConfList(conflistFromSubnetEnv(subnetEnv), SUBNET_ENV_PATH) };
}

function callPlugin(
  name: string,
  host: string,
  command: 'ADD' | 'DEL',
  pod: string,
  list: ConfList,
  index: number,
  prev: unknown,
  runtime: RuntimeConfig,
): Promise<CommandResult> {
  const plugin = `${CNI_BIN_DIR}/${list.plugins[index]!.type}`;
  return labExec(name, host, ['env', ...cniEnv(command, pod), plugin], {
    input: pluginStdin(list, index, prev, runtime),
    timeoutMs: 30_000,
  });
}

/** DEL through every plugin, last first, each with the cached result; returns the failures. */
async function delPlugins(name: string, host: string, pod: string, list: ConfList, result: unknown): Promise<string[]> {
  const failures: string[] = [];
  for (let i = list.plugins.length - 1; i >= 0; i--) {
    const r = await callPlugin(name, host, 'DEL', pod, list, i, result, {});
    if (r.code !== 0) failures.push(`${list.plugins[i]!.type} DEL: ${(r.stdout || r.stderr).trim()}`);
  }
  return failures;
}

/**
 * Adds pod `pod` on `host` as a container runtime would: a network namespace, then the host's
 * CNI config run through the CNI protocol (ADD through each plugin in turn). Returns its IP and
 * the config file used.
 */
export async function podAdd(name: string, host: string, pod: string, opts: PodAddOptions = {}): Promise<{ ip: string; config: string }> {
  validatePodName(pod);
  const { file, list } = await hostCniConfig(name, host, opts.confDir ?? DEFAULT_CNI_CONF_DIR);
  const made = await labExec(name, host, [
    'sh',
    '-c',
    `if [ -e /run/netns/${pod} ]; then echo "pod ${pod} already exists" >&2; exit 17; fi; ip netns add ${pod} && ip -n ${pod} link set lo up`,
  ]);
  if (made.code !== 0) throw new Error(`pod add ${host}/${pod} failed: ${(made.stderr || made.stdout).trim()}`);
  const runtime: RuntimeConfig = opts.portMappings ? { portMappings: opts.portMappings } : {};
  let result: unknown;
  for (let i = 0; i < list.plugins.length; i++) {
    const r = await callPlugin(name, host, 'ADD', pod, list, i, result, runtime);
    if (r.code !== 0) {
      // As a runtime does after a failed ADD: DEL the whole list, then drop the namespace.
      await delPlugins(name, host, pod, list, result);
      await labExec(name, host, ['ip', 'netns', 'del', pod]);
      throw new Error(`pod add ${host}/${pod} failed: ${list.plugins[i]!.type} (from ${file}): ${(r.stdout || r.stderr).trim()}`);
    }
    result = JSON.parse(r.stdout) as unknown;
  }
  const record: PodRecord = { file, list, result };
  await labExec(name, host, ['sh', '-c', `mkdir -p ${POD_CACHE_DIR} && cat > ${POD_CACHE_DIR}/${pod}.json`], {
    input: JSON.stringify(record),
  });
  return { ip: podIpFromResult({ stdout: JSON.stringify(result) }), config: file };
}

export async function podExec(name: string, host: string, pod: string, argv: string[], opts: ExecOptions = {}): Promise<CommandResult> {
  validatePodName(pod);
  return labExec(name, host, ['ip', 'netns', 'exec', pod, ...argv], opts);
}

/**
 * Deletes a pod: CNI DEL with the config and result it was added with, then its namespace. A
 * failed DEL (say, after podnet's destroy removed cni0) is reported on stderr and the namespace
 * goes anyway, as a runtime would; failing to remove the namespace throws.
 */
export async function podDel(name: string, host: string, pod: string): Promise<void> {
  validatePodName(pod);
  const cached = await labExec(name, host, ['cat', `${POD_CACHE_DIR}/${pod}.json`]);
  if (cached.code === 0) {
    const record = JSON.parse(cached.stdout) as PodRecord;
    const failures = await delPlugins(name, host, pod, record.list, record.result);
    if (failures.length > 0) process.stderr.write(`pod del ${host}/${pod}: ${failures.join('; ')}; removing the namespace anyway\n`);
  }
  const r = await labExec(name, host, [
    'sh',
    '-c',
    `rm -f ${POD_CACHE_DIR}/${pod}.json; if [ -e /run/netns/${pod} ]; then ip netns del ${pod}; fi`,
  ]);
  if (r.code !== 0) throw new Error(`pod del ${host}/${pod} failed: ${(r.stderr || r.stdout).trim()}`);
}

// Creates a one-entry BPF array map and pins it to /sys/fs/bpf, then unpins it (x86-64 syscall
// numbers; perl-base is in every Debian). Run as a transient service of the host's own systemd,
// so nspawn's seccomp filter applies exactly as it does to podnet's agent.
// The script goes on stdin: systemd would expand the $ signs of an argument.
const BPF_CHECK =
  [
    'my $a = pack("LLLL", 2, 4, 4, 1) . ("\\0" x 56); my $fd = syscall(321, 0, $a, length($a));',
    'if ($fd < 0) { print "bpf: $!\\n"; exit 1 }',
    'my $p = "/sys/fs/bpf/podnet-lab-check-$$"; my $b = pack("QL", unpack("Q", pack("p", $p)), $fd) . ("\\0" x 52);',
    'if (syscall(321, 6, $b, length($b)) != 0) { print "pin: $!\\n"; exit 2 } unlink $p; print "ok\\n";',
  ].join('\n') + '\n';

/** Whether a host's own services can use bpf() and pin to its /sys/fs/bpf (false for --no-bpf hosts). */
export async function hostCanLoadBpf(name: string, host: string): Promise<{ ok: boolean; detail: string }> {
  const r = await labExec(name, host, ['systemd-run', '--wait', '--pipe', '--quiet', '--collect', 'perl'], {
    input: BPF_CHECK,
    timeoutMs: 30_000,
  });
  return { ok: r.code === 0 && r.stdout.trim() === 'ok', detail: (r.stdout + r.stderr).trim() };
}

/** Lab namespaces present on the machine (for checks that nothing was left behind). */
export function labNetnsPresent(name: string): string[] {
  validateLabName(name);
  const host = new RegExp(`^${name}-(master|node\\d+)$`);
  return listNetns().filter((n) => n === switchNetns(name) || n === workstationNetns(name) || host.test(n));
}

export { nspawnPid, isMountpoint };
export type { CommandResult };
