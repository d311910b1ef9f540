// Live network state of one host as iproute2 reports it, parsed from `ip -json` output.
// What to read (liveStateReads) and how to parse it (parseLiveState) are one list shared by
// both readers: the agent runs the commands itself, the engine renders them into its one SSH
// round trip (engine/host-reading.ts). A field read on one side only cannot happen.
import {
  agentConfigPath,
  AGENT_BUNDLE_PATH,
  FIREWALLD_TABLE,
  TUNNEL_PROTOCOL_NAMES,
  interfaceForwardingPath,
  IP_FORWARD_PATH,
  IPTABLES_COMMANDS,
  nftTableName,
  ownershipRecordPath,
  parseOwnership,
  statusPath,
  SUBNET_ENV_PATH,
  unitPath,
  unmanagedConfigs,
  type IptablesBackend,
  type OwnershipRecord,
} from '../model';
import { shQuote } from './shell-quote';

export interface LiveLink {
  readonly name: string;
  readonly ifindex: number;
  /** `ipip`, `tun`, `bridge`, `veth`, ... (linkinfo.info_kind); undefined for plain devices. */
  readonly kind?: string;
  readonly mtu: number;
  readonly up: boolean;
  /** For ipip links: the local address. */
  readonly ipipLocal?: string;
  /** The link-layer address (`address` in ip -json), lower case; absent for links without one. */
  readonly mac?: string;
  readonly master?: string;
  /** For veths: the peer lives in another network namespace (a pod's, for CNI's veths). */
  readonly peerNetns?: boolean;
}

export interface LiveAddress {
  readonly device: string;
  readonly cidr: string; // e.g. 10.244.1.0/32
}

export interface LiveRoute {
  readonly destination: string; // always with a prefix length
  readonly gateway?: string;
  readonly device?: string;
  readonly onlink: boolean;
  readonly protocol: string; // as ip prints it: "kernel", "boot", "152", or a name
}

export interface LiveHostState {
  readonly links: readonly LiveLink[];
  readonly addresses: readonly LiveAddress[];
  readonly routes: readonly LiveRoute[];
  /** Content of subnet.env, or undefined when absent. */
  readonly subnetEnv?: string;
  /** `nft list table` text of podnet's table, or undefined when absent. */
  readonly nftTable?: string;
  /** net.ipv4.ip_forward (IP_FORWARD_PATH). */
  readonly ipForward: boolean;
  /** net.ipv4.conf.<interface>.forwarding by interface name (`all` and `default` included); empty when unread. */
  readonly forwarding?: Readonly<Record<string, boolean>>;
  /** The iptables filter table's FORWARD chain, per front end that has a filter table. */
  readonly iptablesForward?: Readonly<Partial<Record<IptablesBackend, IptablesForward>>>;
  /** firewalld's zone dispatch, present only while firewalld runs (with its nftables backend). */
  readonly firewalld?: FirewalldZones;
  /** Network managers' configuration directories that exist, and podnet's files in them (path -> content). */
  readonly netManagers?: { readonly dirs: readonly string[]; readonly files: Readonly<Record<string, string>> };
  /** Content of podnet's CNI conflist, or undefined when absent. */
  readonly cniConfig?: string;
  /** Names in the CNI config directory (undefined when the directory is absent). */
  readonly cniConfFiles?: readonly string[];
  /** The network's ownership record (model/ownership-record.ts), when there is a readable one. */
  readonly owned?: OwnershipRecord;
  /** Every podnet network's traces on the host, this one's included (engine reads only: see AGENT_READ_NAMES). */
  readonly podnetTraces?: PodnetTraces;
}

/**
 * What of each podnet network is on a host, found by podnet's own names (host-layout.ts): the
 * units that run podnet's agent and their ActiveState, agent configs, status files, and the
 * nftables tables named `podnet_*`. A network's name is the part of the file name the layout
 * puts it in; tables are listed by their own names (nftTableName is not reversible).
 */
export interface PodnetTraces {
  /** Network name -> the unit's ActiveState (`active`, `inactive`, `failed`, ...). */
  readonly units: Readonly<Record<string, string>>;
  readonly configs: readonly string[];
  readonly statuses: readonly string[];
  readonly nftTables: readonly string[];
}

/** An iptables filter FORWARD chain as `iptables-save` prints it. */
export interface IptablesForward {
  /** `ACCEPT` or `DROP`. */
  readonly policy: string;
  /** Its rules, `-A FORWARD ...` lines as printed. */
  readonly rules: readonly string[];
}

/** Which zone firewalld sends traffic to, as its `inet firewalld` zone-dispatch chains say. */
export interface FirewalldZones {
  /** Source address or CIDR -> zone, for sources bound in both the input and the forward dispatch. */
  readonly sources: Readonly<Record<string, string>>;
  /** Interface -> zone, for interfaces bound to a zone (input dispatch). */
  readonly interfaces: Readonly<Record<string, string>>;
  /** The zone whatever no binding matches falls to: firewalld's default zone (undefined if not seen). */
  readonly defaultZone?: string;
  /** Zones whose input allows IP protocol 4 (IP-in-IP). */
  readonly tunnelProtocolZones: readonly string[];
}

/** Parses `ls -1A DIR` output into names (empty lines dropped). */
export function parseDirListing(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

/** One read: a command's standard output, or a file's content. */
export type LiveRead =
  | {
      readonly source: 'command';
      readonly argv: readonly [string, ...string[]];
      /** The agent fails its pass when a required read fails; an optional one is just absent. */
      readonly required: boolean;
    }
  | { readonly source: 'file'; readonly path: string };

export const LIVE_READ_NAMES = [
  'links',
  'addrs',
  'routes',
  'subnetenv',
  'nft',
  'ipforward',
  'forwarding',
  'iptnft',
  'iptlegacy',
  'firewalld',
  'netmgr',
  'cniconf',
  'cnidir',
  'owned',
  'podnets',
] as const;
export type LiveReadName = (typeof LIVE_READ_NAMES)[number];

/**
 * The reads the agent makes on each pass: all but `podnets` (other networks' traces are the
 * engine's to plan and report; the agent refuses to run beside another network's agent by
 * itself, agent/host/other-networks.ts), which would cost every pass a systemctl call.
 */
export const AGENT_READ_NAMES: readonly LiveReadName[] = LIVE_READ_NAMES.filter((n) => n !== 'podnets');

/**
 * What a host is asked for its live state, by name; the names tag the engine's script sections.
 * `cni` is where the network's conflist goes (DesiredHostState's `cni`: its directory and path).
 */
export function liveStateReads(
  network: string,
  cni: { readonly dir: string; readonly path: string },
): Readonly<Record<LiveReadName, LiveRead>> {
  return {
    links: { source: 'command', argv: ['ip', '-json', '-details', 'link', 'show'], required: true },
    addrs: { source: 'command', argv: ['ip', '-json', '-4', 'addr', 'show'], required: true },
    routes: { source: 'command', argv: [...IP_ROUTES_ARGV], required: true },
    subnetenv: { source: 'file', path: SUBNET_ENV_PATH },
    nft: { source: 'command', argv: ['nft', 'list', 'table', 'ip', nftTableName(network)], required: false },
    ipforward: { source: 'file', path: IP_FORWARD_PATH },
    forwarding: { source: 'command', argv: ['sh', '-c', `grep -H . ${interfaceForwardingPath('*')}`], required: false },
    // iptables-nft-save prints an empty ACCEPT table where there is none, and creates nothing.
    iptnft: { source: 'command', argv: [IPTABLES_COMMANDS.nft.save, '-t', 'filter'], required: false },
    // Asking iptables-legacy for a table the kernel does not hold would load it (iptable_filter):
    // look only where the legacy filter table already exists.
    iptlegacy: {
      source: 'command',
      argv: ['sh', '-c', `grep -qx filter /proc/net/ip_tables_names 2>/dev/null || exit 0; ${IPTABLES_COMMANDS.legacy.save} -t filter`],
      required: false,
    },
    // Absent table (firewalld stopped, or never installed): the command fails, the read is undefined.
    firewalld: { source: 'command', argv: ['nft', 'list', 'table', 'inet', FIREWALLD_TABLE], required: false },
    netmgr: { source: 'command', argv: ['sh', '-c', netManagersScript(network)], required: false },
    cniconf: { source: 'file', path: cni.path },
    // Absent directory: the command fails, and the listing is undefined (not empty).
    cnidir: { source: 'command', argv: ['ls', '-1A', cni.dir], required: false },
    owned: { source: 'file', path: ownershipRecordPath(network) },
    podnets: { source: 'command', argv: ['sh', '-c', podnetTracesScript(network)], required: false },
  };
}

/** `*` in a layout path as a shell glob, and what the name around it is cut with. */
function globOf(path: (n: string) => string): { glob: string; prefix: string; suffix: string } {
  const [prefix, suffix] = path('\n').split('\n') as [string, string];
  return { glob: `${prefix}*${suffix}`, prefix, suffix };
}

/**
 * Prints `@unit NAME STATE`, `@config NAME`, `@status NAME` and `@table TABLE` lines (see
 * PodnetTraces). A unit counts only if it runs podnet's agent bundle: the lab's own
 * `podnet-lab-*.service` helpers, say, are not networks. `network`'s own unit is left out (the
 * host read has its state already): on a host with one network, no systemctl runs here.
 */
export function podnetTracesScript(network: string): string {
  const each = (path: (n: string) => string, body: string) => {
    const g = globOf(path);
    return `for f in ${g.glob}; do [ -f "$f" ] || continue; n=\${f#${g.prefix}}; n=\${n%${g.suffix}}; ${body}; done`;
  };
  return [
    each(
      unitPath,
      `[ "$n" != ${shQuote(network)} ] || continue; grep -qF ${AGENT_BUNDLE_PATH} "$f" || continue; printf '@unit %s %s\\n' "$n" "$(systemctl show -p ActiveState --value "\${f##*/}" 2>/dev/null)"`,
    ),
    each(agentConfigPath, `printf '@config %s\\n' "$n"`),
    each(statusPath, `printf '@status %s\\n' "$n"`),
    `nft list tables ip 2>/dev/null | sed -n 's/^table ip \\(podnet_[A-Za-z0-9_]*\\)$/@table \\1/p'`,
    'true',
  ].join('\n');
}

/**
 * A shell test, true when the unit of a podnet network other than `network` (one that runs
 * podnet's agent bundle) is active: that network holds the devices, routes and pins every
 * network shares.
 */
export function otherAgentActiveTest(network: string): string {
  const g = globOf(unitPath);
  return `( for f in ${g.glob}; do [ -f "$f" ] && [ "$f" != ${shQuote(unitPath(network))} ] && grep -qF ${AGENT_BUNDLE_PATH} "$f" && systemctl is-active -q "\${f##*/}" && exit 0; done; exit 1 )`;
}

/** Parses podnetTracesScript's output. */
export function parsePodnetTraces(text: string): PodnetTraces {
  const units: Record<string, string> = {};
  const configs: string[] = [];
  const statuses: string[] = [];
  const nftTables: string[] = [];
  for (const line of text.split('\n')) {
    const [tag, name, state] = line.trim().split(' ');
    if (!name) continue;
    if (tag === '@unit') units[name] = state || 'unknown';
    else if (tag === '@config') configs.push(name);
    else if (tag === '@status') statuses.push(name);
    else if (tag === '@table') nftTables.push(name);
  }
  return { units, configs, statuses, nftTables };
}

/** Prints `@dir D` for each manager's directory that exists, then `@file F` and the content of each of podnet's files there. */
function netManagersScript(network: string): string {
  const configs = unmanagedConfigs(network);
  return [
    `for d in ${configs.map((c) => c.dir).join(' ')}; do [ -d "$d" ] && echo "@dir $d"; done`,
    `for f in ${configs.map((c) => c.path).join(' ')}; do [ -f "$f" ] && { echo "@file $f"; cat "$f"; }; done`,
    'true',
  ].join('; ');
}

/** Parses netManagersScript's output (each file's content taken to end with a newline, as podnet writes them). */
export function parseNetManagers(text: string): { dirs: string[]; files: Record<string, string> } {
  const dirs: string[] = [];
  const lines: Record<string, string[]> = {};
  let current: string[] | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('@dir ')) {
      dirs.push(line.slice(5));
      current = undefined;
    } else if (line.startsWith('@file ')) {
      current = [];
      lines[line.slice(6)] = current;
    } else current?.push(line);
  }
  const files: Record<string, string> = {};
  for (const [path, content] of Object.entries(lines)) {
    while (content.length && content[content.length - 1] === '') content.pop();
    files[path] = content.map((l) => `${l}\n`).join('');
  }
  return { dirs, files };
}

/** Each read's output; undefined where the file was absent or an optional command failed. */
export type LiveReadOutputs = Readonly<Partial<Record<LiveReadName, string>>>;

/** The live state from the reads' outputs (an absent `ip` output counts as no entries). */
export function parseLiveState(out: LiveReadOutputs): LiveHostState {
  return {
    links: parseLinks(out.links ?? '[]'),
    addresses: parseAddresses(out.addrs ?? '[]'),
    routes: parseRoutes(out.routes ?? '[]'),
    ...(out.subnetenv !== undefined ? { subnetEnv: out.subnetenv } : {}),
    ...(out.nft !== undefined ? { nftTable: out.nft } : {}),
    ipForward: out.ipforward?.trim() === '1',
    forwarding: parseForwarding(out.forwarding ?? ''),
    iptablesForward: {
      ...(out.iptnft ? { nft: parseIptablesForward(out.iptnft) } : {}),
      ...(out.iptlegacy?.trim() ? { legacy: parseIptablesForward(out.iptlegacy) } : {}),
    },
    ...(out.firewalld?.trim() ? { firewalld: parseFirewalldZones(out.firewalld) } : {}),
    netManagers: parseNetManagers(out.netmgr ?? ''),
    ...(out.cniconf !== undefined ? { cniConfig: out.cniconf } : {}),
    ...(out.cnidir !== undefined ? { cniConfFiles: parseDirListing(out.cnidir) } : {}),
    ...withOwned(out.owned),
    ...(out.podnets !== undefined ? { podnetTraces: parsePodnetTraces(out.podnets) } : {}),
  };
}

function withOwned(text: string | undefined): { owned?: OwnershipRecord } {
  const owned = text === undefined ? undefined : parseOwnership(text);
  return owned ? { owned } : {};
}

/** Parses the forwarding read's lines: `/proc/.../conf/eth0/forwarding:1`. */
export function parseForwarding(text: string): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const line of text.split('\n')) {
    const m = /\/conf\/([^/]+)\/forwarding:(\d)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2] === '1';
  }
  return out;
}

/**
 * firewalld's table as `nft list table` prints it. In the dispatch chains `ip saddr
 * 10.244.0.0/16 goto filter_IN_trusted` binds a source, `iifname "eth0" goto filter_IN_public` an
 * interface, a bare `goto filter_IN_public` is the default zone; a zone's `filter_IN_<zone>_allow`
 * chain holds `meta l4proto ipencap accept` when its input allows protocol 4.
 */
export function parseFirewalldZones(text: string): FirewalldZones {
  const bound = { IN: new Map<string, string>(), FWD: new Map<string, string>() };
  const interfaces: Record<string, string> = {};
  const tunnelProtocolZones: string[] = [];
  let defaultZone: string | undefined;
  let chain = '';
  for (const line of text.split('\n').map((l) => l.trim())) {
    chain = /^chain (\S+) \{$/.exec(line)?.[1] ?? chain;
    if (chain === 'filter_INPUT_ZONES' || chain === 'filter_FORWARD_ZONES') {
      const src = /^ip saddr (\S+) goto filter_(IN|FWD)_(\S+)$/.exec(line);
      if (src) bound[src[2] as 'IN' | 'FWD'].set(src[1]!, src[3]!);
      const dev = /^iifname "([^"]+)" goto filter_IN_(\S+)$/.exec(line);
      if (dev) interfaces[dev[1]!] = dev[2]!;
      const all = /^goto filter_IN_(\S+)$/.exec(line);
      if (all) defaultZone = all[1];
    }
    const allowing = /^filter_IN_(\S+)_allow$/.exec(chain)?.[1];
    const proto = /^meta l4proto (\S+) accept$/.exec(line)?.[1];
    if (allowing && proto && TUNNEL_PROTOCOL_NAMES.includes(proto)) tunnelProtocolZones.push(allowing);
  }
  const sources: Record<string, string> = {};
  for (const [cidr, zone] of bound.IN) if (bound.FWD.get(cidr) === zone) sources[cidr] = zone;
  return { sources, interfaces, ...(defaultZone ? { defaultZone } : {}), tunnelProtocolZones };
}

/** The FORWARD chain of `iptables-save -t filter` output. */
export function parseIptablesForward(text: string): IptablesForward {
  const lines = text.split('\n').map((l) => l.trim());
  const policy = /^:FORWARD (\S+)/.exec(lines.find((l) => l.startsWith(':FORWARD ')) ?? '')?.[1] ?? 'ACCEPT';
  return { policy, rules: lines.filter((l) => l.startsWith('-A FORWARD ')) };
}

type Json = Record<string, unknown>;

function asArray(text: string): Json[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const value: unknown = JSON.parse(trimmed);
  if (!Array.isArray(value)) throw new Error('expected a JSON array from ip -json');
  return value as Json[];
}

/** Parses `ip -json -details link show`. */
export function parseLinks(text: string): LiveLink[] {
  return asArray(text).map((l) => {
    const info = (l.linkinfo ?? {}) as Json;
    const data = (info.info_data ?? {}) as Json;
    const flags = (l.flags ?? []) as string[];
    return {
      name: String(l.ifname),
      ifindex: Number(l.ifindex),
      ...(typeof info.info_kind === 'string' ? { kind: info.info_kind } : {}),
      mtu: Number(l.mtu),
      up: flags.includes('UP'),
      ...(info.info_kind === 'ipip' && typeof data.local === 'string' ? { ipipLocal: data.local } : {}),
      ...(typeof l.address === 'string' && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(l.address) ? { mac: l.address.toLowerCase() } : {}),
      ...(typeof l.master === 'string' ? { master: l.master } : {}),
      ...(info.info_kind === 'veth' ? { peerNetns: l.link_netnsid !== undefined } : {}),
    };
  });
}

/** Parses `ip -json -4 addr show` (IPv4 only). */
export function parseAddresses(text: string): LiveAddress[] {
  const out: LiveAddress[] = [];
  for (const l of asArray(text)) {
    for (const a of (l.addr_info ?? []) as Json[]) {
      if (a.family === 'inet') out.push({ device: String(l.ifname), cidr: `${String(a.local)}/${Number(a.prefixlen)}` });
    }
  }
  return out;
}

/**
 * How routes are read (argv): the main table, with protocols as numbers (`-N`). Without `-N`,
 * iproute2 prints a protocol's name from /etc/iproute2/rt_protos(.d), and a `152 something`
 * line there would hide podnet's ROUTE_PROTOCOL from isPodnetRoute.
 */
export const IP_ROUTES_ARGV = ['ip', '-N', '-json', '-4', 'route', 'show', 'table', 'main'] as const;

/** iproute2 omits the protocol of RTPROT_BOOT routes (3, the kernel's number for `boot`). */
const RTPROT_BOOT = '3';

/** Parses IP_ROUTES_ARGV's output. `protocol` is the number as a string, e.g. '152'. */
export function parseRoutes(text: string): LiveRoute[] {
  return asArray(text).map((r) => {
    const dst = String(r.dst);
    const flags = (r.flags ?? []) as string[];
    return {
      destination: dst === 'default' ? '0.0.0.0/0' : dst.includes('/') ? dst : `${dst}/32`,
      ...(typeof r.gateway === 'string' ? { gateway: r.gateway } : {}),
      ...(typeof r.dev === 'string' ? { device: r.dev } : {}),
      onlink: flags.includes('onlink'),
      protocol: String(r.protocol ?? RTPROT_BOOT),
    };
  });
}
