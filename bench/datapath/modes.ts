// The five ways the benchmark carries pod traffic between HOST_A and HOST_B. Each mode sets its
// hosts up from nothing, adds the two pods, and tears everything down again, so that modes can be
// interleaved round by round on the same lab.
//   underlay  podnet apply, directRouting: true   (host-gw routes via eth0: no encapsulation)
//   vxlan     by hand: flannel's vxlan backend     (flannel.1, MTU 1450, static fdb/neigh)
//   ebpf      podnet apply, datapath auto          (tc eBPF IPIP on this kernel)
//   userspace podnet apply, datapath userspace     (on both nodes)
//   openvpn   by hand: Debian's OpenVPN 2.6, p2p over UDP, no cipher, no auth, tun device
// With --vm (two qemu guests on Debian's stock kernel, which has ipip.ko):
//   kernel    podnet apply, datapath auto          (kernel ipip: auto picks it there)
//   vxlan     as above
//   ebpf      podnet apply, datapath ebpf forced   (auto would pick kernel)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { podAdd, podDel } from '../../src/lab';
import { buildManifest, renderNftTable, type DatapathChoice, type NetworkSpec } from '../../src/model';
import type { Daemon } from './measure';
import {
  CLUSTER_CIDR,
  HOSTS,
  OUT_DIR,
  POD,
  benchLab,
  onVmHosts,
  hostSh,
  hostShQuiet,
  log,
  podSubnetOf,
  runPodnet,
  sleep,
  type BenchHost,
} from './util';

export type ModeId = 'underlay' | 'vxlan' | 'ebpf' | 'userspace' | 'openvpn' | 'kernel';
/** The modes on the machine's own kernel (nspawn hosts: no ipip module). */
export const MODE_IDS: readonly ModeId[] = ['underlay', 'vxlan', 'ebpf', 'userspace', 'openvpn'];
/** The modes between two VM hosts (--vm): the kernel datapath against kernel vxlan and podnet's ebpf. */
export const VM_MODE_IDS: readonly ModeId[] = ['kernel', 'vxlan', 'ebpf'];

/** What a mode hands the measurement once it is up. */
export interface ModeUp {
  /** Processes whose CPU belongs to the datapath. */
  readonly daemons: readonly Daemon[];
  /** Facts checked while setting up (datapath in use, routes, MTU), kept with the results. */
  readonly facts: Record<string, unknown>;
}

export interface Mode {
  readonly id: ModeId;
  readonly label: string;
  /** Sets the hosts up and adds the pods; throws if the mode cannot run (after cleaning up). */
  up(round: number): Promise<ModeUp>;
  /**
   * Removes the pods and everything up() made; safe to call after a failed up(). Returns notes
   * on what the mode's own teardown left behind and the benchmark removed.
   */
  down(): Promise<string[]>;
  /** After a measurement: extra facts (agent RSS, datapath counters). */
  after?(): Promise<Record<string, unknown>>;
}

// ---------------------------------------------------------------------------------------------
// podnet modes: the real CLI, apply and destroy, with a manifest per mode.

// The bundled Node where it was shipped (agentRuntime 'bundled'), else the host's own.
const AGENT_STATUS =
  '$(test -x /usr/local/lib/podnet/node && echo /usr/local/lib/podnet/node || echo node) /usr/local/lib/podnet/podnet-agent.js status --network cluster --json';
const AGENT_UNIT = 'podnet-cluster.service';

function manifestFor(id: ModeId, spec: { directRouting: boolean; nodeDatapath?: DatapathChoice; hostNode?: boolean }): string {
  const network: NetworkSpec = {
    name: 'cluster',
    clusterCidr: CLUSTER_CIDR,
    subnetLength: 24,
    backend: { type: 'ipip', directRouting: spec.directRouting, datapath: 'auto' },
    // The figures in DATAPATH.md were taken with podnet's own Node 20 (the userspace loop runs
    // on it); the lab hosts' Debian Node 18 would be a different runtime to measure.
    // On VM hosts the guests' own Node 18 (copying a Node binary into an emulated guest on every
    // apply costs minutes); there the agent is off the data path for both kernel and ebpf.
    agentRuntime: spec.hostNode ? 'auto' : 'bundled',
    nodes: HOSTS.map((h) => ({ name: h.name, address: h.address, ...(spec.nodeDatapath ? { datapath: spec.nodeDatapath } : {}) })),
  };
  // The same function synth uses to write the manifest cdktf hands to `podnet apply`.
  const manifest = buildManifest(network);
  const dir = join(OUT_DIR, 'manifests');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${id}.json`);
  writeFileSync(path, JSON.stringify(manifest, null, 2) + '\n');
  return path;
}

interface AgentStatusDoc {
  state: string;
  datapath?: string;
  error?: string;
  passedOver?: Record<string, string>;
  counters?: { peers: Array<{ node: string; txBytes: number; rxBytes: number; txPackets: number; rxPackets: number }>; dropped: number };
}

async function agentStatus(host: string): Promise<AgentStatusDoc | undefined> {
  // A Node.js start: seconds on an emulated guest, over a minute when the machine is loaded.
  const r = await hostShQuiet(host, AGENT_STATUS, onVmHosts() ? 45_000 : 30_000); // x4 on VM hosts
  try {
    return JSON.parse(r.stdout) as AgentStatusDoc;
  } catch {
    return undefined;
  }
}

async function agentPid(host: string): Promise<number> {
  return Number((await hostSh(host, `systemctl show -p MainPID --value ${AGENT_UNIT}`)).trim());
}

async function addPods(): Promise<void> {
  for (const h of HOSTS) await podAdd(benchLab(), h.name, POD);
}

async function delPods(): Promise<void> {
  for (const h of HOSTS) await podDel(benchLab(), h.name, POD).catch((e: unknown) => log(`pod del ${h.name}/${POD}: ${String(e)}`));
}

class PodnetMode implements Mode {
  private readonly manifest: string;
  constructor(
    readonly id: ModeId,
    readonly label: string,
    private readonly opts: { directRouting: boolean; nodeDatapath?: DatapathChoice; hostNode?: boolean; expect: string },
  ) {
    this.manifest = manifestFor(id, opts);
  }

  async up(): Promise<ModeUp> {
    const apply = await runPodnet(['apply', '--manifest', this.manifest, '--lab', benchLab()], 120_000);
    if (apply.code !== 0) {
      const why = (apply.stderr + apply.stdout)
        .trim()
        .split('\n')
        .filter((l) => !/^npm warn/.test(l))
        .slice(-4)
        .join(' | ');
      const status = await agentStatus(HOSTS[0]!.name);
      throw new Error(`podnet apply failed (exit ${apply.code}): ${why}${status?.error ? ` | agent: ${status.error}` : ''}`);
    }
    const facts: Record<string, unknown> = {};
    for (const h of HOSTS) {
      const s = await agentStatus(h.name);
      if (!s) throw new Error(`${h.name}: no agent status after apply`);
      if (s.datapath !== this.opts.expect || s.state === 'failed') {
        throw new Error(
          `${h.name}: agent runs datapath ${s.datapath ?? 'none'} (state ${s.state}${s.error ? `: ${s.error}` : ''}), wanted ${this.opts.expect}`,
        );
      }
      facts[`${h.name}.datapath`] = s.datapath;
      facts[`${h.name}.passedOver`] = s.passedOver;
    }
    // The route to the peer's pods tells the two podnet encapsulating modes from host-gw.
    const [a, b] = HOSTS as [BenchHost, BenchHost];
    const route = (await hostSh(a.name, `ip -4 route show ${podSubnetOf(b)}`)).trim();
    facts.route = route;
    const wantDev = this.opts.directRouting ? `via ${b.address} dev eth0` : 'dev flannel.ipip';
    if (!route.includes(wantDev)) throw new Error(`${a.name}: route to ${podSubnetOf(b)} is '${route}', wanted '${wantDev}'`);
    await addPods();
    const daemons = await Promise.all(HOSTS.map(async (h) => ({ host: h.name, pid: await agentPid(h.name), what: 'podnet-agent' })));
    return { daemons, facts };
  }

  async after(): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    for (const h of HOSTS) {
      const pid = await agentPid(h.name);
      const rss = /VmRSS:\s+(\d+) kB/.exec(await hostSh(h.name, `cat /proc/${pid}/status`));
      out[`${h.name}.agentRssMb`] = rss ? Number(rss[1]) / 1024 : null;
      const s = await agentStatus(h.name);
      if (s?.counters) out[`${h.name}.counters`] = s.counters;
    }
    return out;
  }

  async down(): Promise<string[]> {
    await delPods();
    const r = await runPodnet(['destroy', '--manifest', this.manifest, '--lab', benchLab()], 120_000);
    if (r.code !== 0) throw new Error(`podnet destroy failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
    // podnet destroy removes its tc filters but leaves the (then empty) clsact qdisc on the
    // underlay; remove it so the next mode starts from the same host. Any filter left is not ours
    // to remove: the footprint check then reports it.
    const notes: string[] = [];
    for (const h of HOSTS) {
      const r2 = await hostShQuiet(
        h.name,
        [
          'tc qdisc show dev eth0 | grep -q clsact || exit 0',
          '[ -z "$(tc filter show dev eth0 ingress)$(tc filter show dev eth0 egress)" ] || exit 0',
          'tc qdisc del dev eth0 clsact && echo removed',
        ].join('\n'),
      );
      if (r2.stdout.includes('removed')) notes.push(`${h.name}: podnet destroy left an empty clsact qdisc on eth0 (removed)`);
    }
    return notes;
  }
}

// ---------------------------------------------------------------------------------------------
// By-hand modes: what flannel's vxlan backend and an OpenVPN tunnel would set up, with iproute2.

const IP_FORWARD_MEMO = '/run/dpbench-ip_forward';
const MASQ_TABLE = 'dpbench_flannel';

/**
 * flannel's --ip-masq rules (its default, and what FLANNEL_IPMASQ=true in subnet.env promises):
 * the same rules podnet installs, from the same model function, in a table of the benchmark's
 * own. Besides being flannel style, this keeps the comparison fair: a nat chain turns on
 * conntrack for every packet of the host, and podnet's modes have one.
 */
function masqTable(h: BenchHost): string {
  return renderNftTable({ network: 'dpbench', clusterCidr: CLUSTER_CIDR, podCidr: podSubnetOf(h), ipMasq: true }).replace(
    /^table ip \S+/,
    `table ip ${MASQ_TABLE}`,
  );
}

/** subnet.env (as flannel writes it: the pods' MTU comes from here), masquerade rules and ip_forward, remembered. */
function handBase(h: BenchHost, mtu: number): string {
  return [
    `[ -f ${IP_FORWARD_MEMO} ] || cat /proc/sys/net/ipv4/ip_forward > ${IP_FORWARD_MEMO}`,
    'sysctl -qw net.ipv4.ip_forward=1',
    `nft -f - <<'NFT'\n${masqTable(h)}NFT`,
    'mkdir -p /run/flannel',
    `printf 'FLANNEL_NETWORK=${CLUSTER_CIDR}\\nFLANNEL_SUBNET=10.244.${h.index}.1/24\\nFLANNEL_MTU=${mtu}\\nFLANNEL_IPMASQ=true\\n' > /run/flannel/subnet.env`,
  ].join('\n');
}

/** Undoes handBase and the CNI bridge the pods were plugged into. */
const HAND_BASE_DOWN = [
  'ip link del cni0 2>/dev/null',
  `nft delete table ip ${MASQ_TABLE} 2>/dev/null`,
  'rm -f /run/flannel/subnet.env',
  `if [ -f ${IP_FORWARD_MEMO} ]; then sysctl -qw net.ipv4.ip_forward=$(cat ${IP_FORWARD_MEMO}); rm -f ${IP_FORWARD_MEMO}; fi`,
  'true',
].join('\n');

const peerOf = (h: BenchHost): BenchHost => HOSTS.find((x) => x !== h)!;
/** flannel derives the VTEP MAC from the host; fixed ones keep the static entries simple. */
const vtepMac = (h: BenchHost): string => `02:70:6e:fa:00:${h.index.toString(16).padStart(2, '0')}`;

class VxlanMode implements Mode {
  readonly id = 'vxlan';
  readonly label = 'kernel vxlan (flannel.1, MTU 1450)';

  async up(): Promise<ModeUp> {
    try {
      for (const h of HOSTS) {
        const p = peerOf(h);
        await hostSh(
          h.name,
          [
            'set -e',
            handBase(h, 1450),
            // flannel's vxlan backend: VNI 1, port 8472, no learning, static FDB and neighbour entries.
            `ip link add flannel.1 address ${vtepMac(h)} type vxlan id 1 local ${h.address} dev eth0 dstport 8472 nolearning`,
            'ip link set flannel.1 mtu 1450 up',
            `ip addr add 10.244.${h.index}.0/32 dev flannel.1`,
            `ip neigh replace 10.244.${p.index}.0 lladdr ${vtepMac(p)} dev flannel.1 nud permanent`,
            `bridge fdb append ${vtepMac(p)} dev flannel.1 dst ${p.address}`,
            `ip route add ${podSubnetOf(p)} via 10.244.${p.index}.0 dev flannel.1 onlink`,
          ].join('\n'),
        );
      }
      await addPods();
      const [a, b] = HOSTS as [BenchHost, BenchHost];
      return { daemons: [], facts: { route: (await hostSh(a.name, `ip -4 route show ${podSubnetOf(b)}`)).trim() } };
    } catch (err) {
      await this.down();
      throw err;
    }
  }

  async down(): Promise<string[]> {
    await delPods();
    for (const h of HOSTS) await hostShQuiet(h.name, `ip link del flannel.1 2>/dev/null\n${HAND_BASE_DOWN}`);
    return [];
  }
}

class OpenvpnMode implements Mode {
  readonly id = 'openvpn';
  readonly label = 'OpenVPN 2.6 p2p UDP, no cipher/auth';
  private unit = '';

  async up(round: number): Promise<ModeUp> {
    // A fresh unit name per round: a --collect'ed transient unit can linger a moment after stop.
    this.unit = `dpbench-openvpn-${round}-${Date.now() % 100000}`;
    try {
      for (const h of HOSTS) {
        const p = peerOf(h);
        await hostSh(
          h.name,
          [
            'set -e',
            handBase(h, 1450),
            // A service of the host's own systemd: stopping it closes the tun, which takes its routes.
            [
              `systemd-run --unit=${this.unit} --collect --quiet openvpn --dev ovpn0 --dev-type tun --proto udp`,
              `--local ${h.address} --lport 1194 --remote ${p.address} --rport 1194`,
              `--ifconfig 10.244.${h.index}.0 10.244.${p.index}.0 --route 10.244.${p.index}.0 255.255.255.0 --tun-mtu 1450`,
              '--cipher none --auth none --data-ciphers none --verb 1',
            ].join(' '),
          ].join('\n'),
        );
      }
      // Wait for the tunnels and their routes.
      for (const h of HOSTS) {
        const p = peerOf(h);
        await hostSh(
          h.name,
          `for i in $(seq 100); do ip -4 route show ${podSubnetOf(p)} | grep -q ovpn0 && exit 0; sleep 0.1; done; journalctl -u ${this.unit} --no-pager | tail -5; exit 1`,
          20_000,
        );
      }
      await addPods();
      const daemons = await Promise.all(
        HOSTS.map(async (h) => ({
          host: h.name,
          pid: Number((await hostSh(h.name, `systemctl show -p MainPID --value ${this.unit}`)).trim()),
          what: 'openvpn',
        })),
      );
      const version = (await hostSh(HOSTS[0]!.name, 'openvpn --version | head -1')).trim();
      const [a, b] = HOSTS as [BenchHost, BenchHost];
      return { daemons, facts: { version, route: (await hostSh(a.name, `ip -4 route show ${podSubnetOf(b)}`)).trim() } };
    } catch (err) {
      await this.down();
      throw err;
    }
  }

  async down(): Promise<string[]> {
    await delPods();
    for (const h of HOSTS) {
      if (this.unit)
        await hostShQuiet(
          h.name,
          `systemctl stop ${this.unit} 2>/dev/null; for i in $(seq 50); do ip link show ovpn0 >/dev/null 2>&1 || break; sleep 0.1; done`,
        );
      await hostShQuiet(h.name, HAND_BASE_DOWN);
    }
    return [];
  }
}

/** The modes; `vm`: between two VM hosts (kernel ipip, vxlan, ebpf forced). */
export function makeModes(vm = false): Partial<Record<ModeId, Mode>> {
  if (vm)
    return {
      kernel: new PodnetMode('kernel', 'kernel ipip (podnet datapath auto)', { directRouting: false, hostNode: true, expect: 'kernel' }),
      vxlan: new VxlanMode(),
      ebpf: new PodnetMode('ebpf', 'podnet ebpf (datapath ebpf forced)', {
        directRouting: false,
        nodeDatapath: 'ebpf',
        hostNode: true,
        expect: 'ebpf',
      }),
    };
  return {
    underlay: new PodnetMode('underlay', 'underlay routing (podnet directRouting)', { directRouting: true, expect: 'ebpf' }),
    vxlan: new VxlanMode(),
    ebpf: new PodnetMode('ebpf', 'podnet ebpf (datapath auto)', { directRouting: false, expect: 'ebpf' }),
    userspace: new PodnetMode('userspace', 'podnet userspace (node override)', {
      directRouting: false,
      nodeDatapath: 'userspace',
      expect: 'userspace',
    }),
    openvpn: new OpenvpnMode(),
  };
}

/**
 * What a host looks like with no mode set up: links, routes, namespaces, firewall, qdiscs on the
 * underlay (the eBPF programs hang there), forwarding, flannel's lease, running units. Compared
 * after every teardown with the same text taken right after the lab came up.
 */
export async function hostFootprint(host: string): Promise<string> {
  return hostSh(
    host,
    [
      "ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort",
      'ip -4 route show table main',
      'ip netns list',
      'nft list ruleset',
      'tc qdisc show dev eth0',
      'tc filter show dev eth0 ingress 2>/dev/null',
      'sysctl -n net.ipv4.ip_forward',
      'ls /run/flannel 2>/dev/null',
      "systemctl list-units --no-legend --plain 'podnet*' 'dpbench*' | awk '{print $1, $3, $4}'",
    ].join('; echo --; '),
  );
}

/** Waits a moment between modes so one mode's teardown does not overlap the next's traffic. */
export const settle = (): Promise<void> => sleep(300);
