// Host profiles: lab hosts set up like users' hosts rather than pristine ones, so podnet is
// tested beside what it meets in the field. A profile is a '-'-joined list of traits, e.g.
// `ens33-mtu1450` or `docker-legacy`; `podnet lab up --profile node1=docker,node2=ens33-mtu1450`.
// Interface name, MTU and a path-MTU router are cabling (set where the lab plugs the host in); everything else is
// files in the host's own disk that its systemd runs at every boot, as the real software would.
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DEFAULT_NIC, type Nic } from './netns';

/** The traits a profile can combine. */
export interface HostProfile {
  /** As given, e.g. `ens33-mtu1450`. */
  readonly name: string;
  /** The underlay NIC's name (default eth0) and MTU (default 1500). */
  readonly nic: { readonly name: string; readonly mtu: number };
  /**
   * `pmtu<N>`: the host's cable runs through a router whose path MTU is N bytes (576 <= N < the
   * NIC's MTU), both ways: a DF packet larger than N gets ICMP "fragmentation needed" (type 3
   * code 4, next-hop MTU N) from the router, as behind a tunnel or a WAN link (netns.ts).
   */
  readonly pathMtu?: number;
  /**
   * A FORWARD policy of DROP in the iptables filter table, through `iptables-nft` (Debian 12's
   * default `iptables`) or `iptables-legacy`; `docker` also adds Docker's chains and a docker0.
   */
  readonly firewall?: { readonly backend: 'nft' | 'legacy'; readonly docker: boolean };
  /** A /etc/sysctl.d file turning forwarding off (CIS-style hardening), applied at boot and by `sysctl --system`. */
  readonly sysctlHardening: boolean;
  /** systemd-networkd running with a catch-all `.network` file, as cloud images ship: it claims every link. */
  readonly networkd: boolean;
  /** ufw enabled with Debian's defaults (FORWARD policy DROP), SSH allowed. Needs the `ufw` package. */
  readonly ufw: boolean;
  /** firewalld running in its default configuration (nftables backend, default zone public). Needs the `firewalld` package. */
  readonly firewalld: boolean;
  /** NetworkManager running and managing every device (no device left unmanaged by default). Needs `network-manager`. */
  readonly networkManager: boolean;
}

/** Packages a profile needs beyond the lab's base (ensureBase builds a flavour with them). */
export function profilePackages(p: HostProfile): string[] {
  // Both depend on polkitd, which depends on the virtual `logind`: debootstrap does not resolve
  // virtual packages, so its provider (what apt would pick) is named.
  const polkit = p.firewalld || p.networkManager ? ['libpam-systemd'] : [];
  return [...(p.ufw ? ['ufw'] : []), ...(p.firewalld ? ['firewalld'] : []), ...(p.networkManager ? ['network-manager'] : []), ...polkit];
}

/**
 * The services a profile package's maintainer scripts enable at install. A lab's hosts share one
 * base, which holds every package any of its profiles needs: a host whose profile does not ask
 * for the trait gets these masked, so it has the package installed but not running (as ufw,
 * installed but not enabled, is inert by itself).
 */
const PACKAGE_SERVICES: Readonly<Record<string, readonly string[]>> = {
  firewalld: ['firewalld.service'],
  'network-manager': ['NetworkManager.service', 'NetworkManager-wait-online.service', 'NetworkManager-dispatcher.service'],
};

export const PROFILE_TRAITS = [
  'ens<N>|enp<N>s<N>|eno<N>',
  'mtu<N>',
  'pmtu<N>',
  'docker',
  'fwdrop',
  'legacy',
  'sysctl',
  'networkd',
  'ufw',
  'firewalld',
  'nm',
] as const;

/** Parses one profile name; throws naming the trait it does not know. */
export function parseProfile(name: string): HostProfile {
  let nicName = 'eth0';
  let mtu = 1500;
  let pathMtu: number | undefined;
  let firewall: 'docker' | 'fwdrop' | undefined;
  let legacy = false;
  let sysctlHardening = false;
  let networkd = false;
  let ufw = false;
  let firewalld = false;
  let networkManager = false;
  for (const trait of name.split('-')) {
    const m = /^mtu(\d+)$/.exec(trait);
    const pm = /^pmtu(\d+)$/.exec(trait);
    if (pm) pathMtu = Number(pm[1]);
    else if (/^(ens\d+|enp\d+s\d+|eno\d+)$/.test(trait)) nicName = trait;
    else if (m) {
      mtu = Number(m[1]);
      if (mtu < 576 || mtu > 9000) throw new Error(`profile '${name}': mtu${mtu} is outside 576..9000`);
    } else if (trait === 'docker' || trait === 'fwdrop') firewall = trait;
    else if (trait === 'legacy') legacy = true;
    else if (trait === 'sysctl') sysctlHardening = true;
    else if (trait === 'networkd') networkd = true;
    else if (trait === 'ufw') ufw = true;
    else if (trait === 'firewalld') firewalld = true;
    else if (trait === 'nm') networkManager = true;
    else throw new Error(`profile '${name}': unknown trait '${trait}' (traits: ${PROFILE_TRAITS.join(', ')}, joined by '-')`);
  }
  if (pathMtu !== undefined && (pathMtu < 576 || pathMtu >= mtu))
    throw new Error(`profile '${name}': pmtu${pathMtu} must be at least 576 and below the NIC's MTU (${mtu})`);
  if (legacy && !firewall) throw new Error(`profile '${name}': 'legacy' says which iptables a firewall uses; add 'docker' or 'fwdrop'`);
  return {
    name,
    nic: { name: nicName, mtu },
    ...(pathMtu !== undefined ? { pathMtu } : {}),
    ...(firewall ? { firewall: { backend: legacy ? 'legacy' : 'nft', docker: firewall === 'docker' } } : {}),
    sysctlHardening,
    networkd,
    ufw,
    firewalld,
    networkManager,
  } as HostProfile;
}

// Docker 24's filter and nat rules on a host with no containers (what `dockerd` installs at
// start, `iptables-save` of a fresh Debian 12 host with docker.io), and its docker0 bridge.
const DOCKER_RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
COMMIT
`;

const FWDROP_RULES = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n';

/** The sysctl trait's file (relative to the root): `sysctl -p /<it>` is a reload of it. */
export const HARDENING_FILE = 'etc/sysctl.d/60-hardening.conf';

/**
 * The nm trait's catch-all: every device managed, above udev's rules (85-nm-unmanaged.rules
 * leaves veths to others) and NetworkManager's own defaults for software devices, as a host
 * whose NetworkManager is told to run the whole network has it. A keyfile `unmanaged-devices`
 * list (podnet's) still wins over it.
 */
export const NM_MANAGE_ALL_FILE = 'etc/NetworkManager/conf.d/99-manage-all.conf';
const NM_MANAGE_ALL = '[device-manage-all]\nmatch-device=*\nmanaged=1\n';

/** The unit that plays the profile's software at every boot, and the files it reads. */
export const PROFILE_UNIT = 'podnet-lab-profile.service';

/** Files to write into the host's root (relative path -> content), and units to enable (their paths inside the host). */
export function profileFiles(p: HostProfile): { files: Record<string, string>; enable: string[] } {
  const files: Record<string, string> = {};
  const boot: string[] = [];
  if (p.firewall) {
    const restore = p.firewall.backend === 'legacy' ? 'iptables-legacy-restore' : 'iptables-nft-restore';
    files['etc/podnet-lab/iptables.rules'] = p.firewall.docker ? DOCKER_RULES : FWDROP_RULES;
    boot.push(`${restore} < /etc/podnet-lab/iptables.rules`);
    // Docker turns forwarding on when it starts; its bridge exists with no container on it.
    if (p.firewall.docker)
      boot.push('ip link add docker0 type bridge && ip addr add 172.17.0.1/16 dev docker0', 'sysctl -q -w net.ipv4.ip_forward=1');
  }
  if (p.sysctlHardening) {
    files[HARDENING_FILE] =
      '# CIS-style hardening: this host is no router\nnet.ipv4.ip_forward = 0\nnet.ipv4.conf.all.forwarding = 0\nnet.ipv4.conf.default.forwarding = 0\n';
    // systemd-sysctl skips containers (/proc/sys is read-only there): play its part for this file.
    boot.unshift(`sysctl -q -p /${HARDENING_FILE}`);
  }
  // ufw as a user turns it on: SSH allowed, then enabled (it persists both and loads them at
  // every boot itself); its default FORWARD policy is DROP (/etc/default/ufw).
  if (p.ufw) boot.push('ufw status | grep -q "Status: active" || { ufw allow 22/tcp >/dev/null && ufw --force enable >/dev/null; }');
  const enable: string[] = [];
  if (boot.length) {
    files['usr/local/sbin/podnet-lab-profile'] =
      `#!/bin/sh\n# lab host profile '${p.name}': what the host's software sets up at boot\nset -e\n${boot.join('\n')}\n`;
    files[`etc/systemd/system/${PROFILE_UNIT}`] =
      `[Unit]\nDescription=lab host profile ${p.name}\nAfter=systemd-sysctl.service\nBefore=network-pre.target\nWants=network-pre.target\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/usr/local/sbin/podnet-lab-profile\n\n[Install]\nWantedBy=multi-user.target\n`;
    enable.push(`/etc/systemd/system/${PROFILE_UNIT}`);
  }
  if (p.networkd) {
    // Every link is networkd's (KeepConfiguration keeps the lab's own address on the NIC): on
    // each start it takes bridge ports it was not told about off their bridge.
    files['etc/systemd/network/99-catch-all.network'] =
      '[Match]\nName=*\n\n[Network]\nLinkLocalAddressing=no\nIPv6AcceptRA=no\nKeepConfiguration=yes\n';
    enable.push('/lib/systemd/system/systemd-networkd.service');
  }
  if (p.firewalld) enable.push('/lib/systemd/system/firewalld.service');
  if (p.networkManager) {
    files[NM_MANAGE_ALL_FILE] = NM_MANAGE_ALL;
    enable.push('/lib/systemd/system/NetworkManager.service');
  }
  return { files, enable };
}

/**
 * Units to mask on a host of a lab whose base holds `labPackages`: the services of the packages
 * its own profile (if any) does not ask for.
 */
export function maskedServices(p: HostProfile | undefined, labPackages: readonly string[]): string[] {
  const wanted = new Set(p ? profilePackages(p) : []);
  return labPackages.filter((pkg) => !wanted.has(pkg)).flatMap((pkg) => PACKAGE_SERVICES[pkg] ?? []);
}

/** The underlay NIC a host with this profile (or none) is cabled with. */
export function nicOf(profile: string | undefined): Nic {
  return profile ? parseProfile(profile).nic : DEFAULT_NIC;
}

/**
 * Writes the profile's files into a host root (its upper layer) and enables its units, before
 * the first boot; masks the services of the lab's profile packages it does not ask for. A host
 * with no profile (`undefined`) gets only the masks.
 */
export function applyProfile(rootDir: string, p: HostProfile | undefined, labPackages: readonly string[]): void {
  for (const unit of maskedServices(p, labPackages)) {
    const link = join(rootDir, 'etc/systemd/system', unit);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync('/dev/null', link);
  }
  if (!p) return;
  const { files, enable } = profileFiles(p);
  for (const [rel, text] of Object.entries(files)) {
    const path = join(rootDir, rel);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    if (rel.startsWith('usr/local/sbin/')) chmodSync(path, 0o755);
  }
  const wants = join(rootDir, 'etc/systemd/system/multi-user.target.wants');
  mkdirSync(wants, { recursive: true });
  for (const unit of enable) {
    try {
      symlinkSync(unit, join(wants, unit.split('/').pop()!));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}
