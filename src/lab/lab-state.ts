// The lab's state file: everything `up` made (namespaces, mounts, processes, sysctls) is written
// down *before* it is made, so `down` can remove exactly that, also after a crash mid-`up`.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { labStateDir } from './lab-config';

/** How a VM host's guest is accelerated: KVM, or TCG (qemu's software emulation). */
export type VmAccel = 'kvm' | 'tcg';

/** What only a VM host has (docs/lab.md, "VM hosts"). */
export interface VmHostState {
  /** Unset until qemu is first started (the accelerator is chosen then). */
  accel?: VmAccel;
  /** qemu's PID (it runs in the switch namespace). */
  pid?: number;
  /** The guest's kernel release (Debian's stock kernel). */
  kernel: string;
}

export interface HostState {
  name: string;
  index: number;
  address: string;
  netns: string;
  machine: string;
  dir: string;
  rootDir: string;
  bpf: boolean;
  /** The host profile it was made with (profiles.ts), e.g. `ens33-mtu1450`; none: pristine. */
  profile?: string;
  /** Set for a qemu guest; absent for a systemd-nspawn host. */
  vm?: VmHostState;
  /** The bash loop that runs systemd-nspawn (and boots the host again after a guest reboot). */
  wrapperPid?: number;
}

export interface LabState {
  version: 1;
  name: string;
  status: 'starting' | 'up' | 'stopping' | 'failed';
  createdAt: string;
  stateDir: string;
  baseHash: string;
  baseRootfs: string;
  hosts: HostState[];
  workstation: { netns: string; address: string };
  switchNetns: string;
  sshKeyPath: string;
  knownHostsPath: string;
  /** What was made, in order; `down` undoes these in reverse. */
  made: {
    netns: string[];
    mounts: string[];
    propagateDirs: string[];
    /** One cgroup per host and hierarchy (see cgroups.ts). */
    cgroups?: string[];
    /** fs.inotify.max_user_instances before this lab raised it. */
    inotifyInstancesBefore?: number;
    inotifyInstancesSet?: number;
  };
}

export function statePath(lab: string): string {
  return join(labStateDir(lab), 'state.json');
}

export function loadState(lab: string): LabState | undefined {
  const p = statePath(lab);
  if (!existsSync(p)) return undefined;
  return JSON.parse(readFileSync(p, 'utf8')) as LabState;
}

export function saveState(state: LabState): void {
  mkdirSync(state.stateDir, { recursive: true });
  const p = statePath(state.name);
  const tmp = `${p}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n');
  renameSync(tmp, p);
}
