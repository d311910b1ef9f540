// Helpers for tests that need a lab of real hosts (test/lab/*.test.ts and later end-to-end
// tests). Lab tests are skipped, with the reason printed, where the machine cannot run a lab.
import { execFileSync } from 'node:child_process';
import {
  VmBootError,
  labDown,
  labExec,
  labUnavailableReason,
  labUp,
  labVmUnavailableReason,
  readLab,
  sshExec,
  type CommandResult,
  type LabInfo,
} from '../../src/lab';

/** Why lab tests cannot run here (not root, no systemd-nspawn, ...), or undefined if they can. */
export function requireLabOrSkip(): string | undefined {
  if (process.env.PODNET_SKIP_LAB_TESTS) return `PODNET_SKIP_LAB_TESTS is set (${process.env.PODNET_SKIP_LAB_TESTS})`;
  return labUnavailableReason();
}

/**
 * `describe` for lab tests: runs `body` when a lab can run here; otherwise registers one skipped
 * test whose name says why, and prints the reason, so a skip is never silent.
 */
export function describeLab(title: string, body: () => void): void {
  describeUnless(requireLabOrSkip(), 'lab', title, body);
}

/** `describe` for tests that boot VM hosts (qemu, Debian's stock kernel): skipped, saying why, where they cannot. */
export function describeVmLab(title: string, body: () => void): void {
  const reason = process.env.PODNET_SKIP_LAB_TESTS ? requireLabOrSkip() : labVmUnavailableReason();
  describeUnless(reason, 'VM lab', title, body);
}

/** `describe` when `reason` is undefined; otherwise one skipped test named for the reason, also printed. */
export function describeUnless(reason: string | undefined, kind: string, title: string, body: () => void): void {
  if (!reason) {
    describe(title, body);
    return;
  }
  describe(title, () => {
    process.stderr.write(`[${kind} tests skipped] ${title}: ${reason}\n`);
    it.skip(`skipped: ${reason}`, () => undefined);
  });
}

/**
 * A test file's lab name: `base`, plus `$PODNET_TEST_LAB_SUFFIX` when set, so two checkouts
 * on one machine can run the same test file at once without taking each other's lab down.
 */
export function testLabName(base: string): string {
  return `${base}${process.env.PODNET_TEST_LAB_SUFFIX ?? ''}`;
}

export interface LabFixture {
  /** The running lab (throws if called before beforeAll finished). */
  readonly info: () => LabInfo;
  readonly name: string;
  /** ssh from the workstation with the lab's key and strict host key checking. */
  readonly ssh: (host: string, command: string) => Promise<CommandResult>;
}

/**
 * Brings a lab up in beforeAll and takes it down in afterAll. A lab of the same name left over by
 * an earlier, killed run is taken down first. The first run on a machine builds the base image
 * (about a minute), hence the long hook timeout.
 */
export function withLab(
  name: string,
  opts: { hosts?: number; noBpfHosts?: string[]; profiles?: Record<string, string>; extraPackages?: string[]; vmHosts?: string[] } = {},
): LabFixture & { readonly skipped: () => string | undefined } {
  let info: LabInfo | undefined;
  let skipped: string | undefined;
  beforeAll(async () => {
    if (readLab(name)) await labDown(name);
    const log = (l: string): void => {
      if (process.env.PODNET_LAB_VERBOSE) process.stderr.write(`${l}\n`);
    };
    try {
      info = await labUp({
        name,
        hosts: opts.hosts,
        noBpfHosts: opts.noBpfHosts,
        profiles: opts.profiles,
        extraPackages: opts.extraPackages,
        vmHosts: opts.vmHosts,
        log,
      });
    } catch (e) {
      // A guest that does not boot on this machine (emulation too slow, a broken KVM) is a reason
      // to skip, given by name; every other failure of `up` fails the tests.
      if (!(e instanceof VmBootError)) throw e;
      skipped = `a VM host did not boot here: ${e.message.split('\n')[0]}`;
      process.stderr.write(`[VM lab tests skipped] ${name}: ${skipped}\n${e.message}\n`);
    }
  }, 10 * 60_000);
  afterAll(async () => {
    await labDown(name);
  }, 3 * 60_000);
  return {
    name,
    info: () => {
      if (!info) throw new Error(`lab ${name} is not up`);
      return info;
    },
    ssh: (host, command) => sshExec(name, host, command, { timeoutMs: 30_000 }),
    skipped: () => skipped,
  };
}

/** IPv4 routes of the machine's own network namespace (to prove a lab never adds any). */
export function rootRoutes(): string[] {
  return execFileSync('ip', ['-4', 'route', 'show', 'table', 'all'], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

/**
 * What destroy must restore exactly on a lab host: links, routes, qdiscs, the nftables ruleset
 * and the files under the directories podnet touches (account files a test may edit left out).
 */
export async function hostSnapshot(lab: string, host: string): Promise<string> {
  const r = await labExec(lab, host, [
    'sh',
    '-c',
    "ip -json link show | sed -E 's/\"(operstate|linkmode|group|txqlen|flags)\":[^,]*,//g'; ip -json -4 route show table all; tc qdisc show; nft list ruleset; find /etc /usr/local /run/flannel /run/podnet -xdev 2>/dev/null | grep -v -e '^/etc/ld.so.cache' -e '^/etc/\\(passwd\\|group\\|shadow\\|gshadow\\|subuid\\|subgid\\)-\\?$' | sort",
  ]);
  return r.stdout;
}
