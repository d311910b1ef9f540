// Pure helpers around the podnet-bpf loader: argument lists, stdin for the *-sync commands,
// and parsing its JSON. No I/O here.
import { BPF_DROP_REASONS, droppedTotal, zeroDrops, type BpfDropReason } from '../../../src/model/drop-reasons';
import { parseIpv4, requireCidr } from '../../../src/model/ipv4';
import type { DatapathCounters, DatapathPeer, PeerCounters } from '../datapath';
import type { LocalPod } from './local-pods';
import { BPF_PIN_ROOT } from '../../../src/model';

export const DEFAULT_PIN_DIR = BPF_PIN_ROOT;

export interface AttachParams {
  readonly pinDir: string;
  readonly object: string;
  readonly tunnelDevice: string;
  readonly underlayDevice: string;
  readonly localAddress: string;
}

export function attachArgs(p: AttachParams): string[] {
  return [
    '--pin-dir',
    p.pinDir,
    'attach',
    '--json',
    '--object',
    p.object,
    '--tunnel-dev',
    p.tunnelDevice,
    '--underlay-dev',
    p.underlayDevice,
    '--local',
    p.localAddress,
  ];
}

export function detachArgs(pinDir: string, tunnelDevice: string, underlayDevice: string): string[] {
  return ['--pin-dir', pinDir, 'detach', '--json', '--tunnel-dev', tunnelDevice, '--underlay-dev', underlayDevice];
}

/** stdin of `podnet-bpf peers-sync`: one `CIDR ADDRESS` per line, validated, sorted, no duplicates. */
export function peersSyncInput(peers: readonly DatapathPeer[]): string {
  const seen = new Map<string, string>();
  for (const p of peers) {
    requireCidr(p.podCidr);
    if (parseIpv4(p.address) === undefined) throw new Error(`peer ${p.node}: address '${p.address}' is not IPv4`);
    const prev = seen.get(p.podCidr);
    if (prev !== undefined && prev !== p.address) throw new Error(`pod CIDR ${p.podCidr} is claimed by two peers (${prev}, ${p.address})`);
    seen.set(p.podCidr, p.address);
  }
  return [...seen]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([c, a]) => `${c} ${a}\n`)
    .join('');
}

/** stdin of `podnet-bpf pods-sync`: `IP HOSTIFINDEX PODMAC HOSTMAC` per line. */
export function podsSyncInput(pods: readonly LocalPod[]): string {
  return pods.map((p) => `${p.ip} ${p.ifindex} ${p.podMac} ${p.hostMac}\n`).join('');
}

/** pn_drops summed over CPUs, by the names podnet-bpf prints (PN_DROP_REASONS in podnet-ipip.h). */
export type LoaderDrops = Readonly<Record<BpfDropReason, number>>;

export interface LoaderCounters {
  readonly peers: readonly {
    address: string;
    index: number;
    cidrs: string[];
    txPackets: number;
    txBytes: number;
    rxPackets: number;
    rxBytes: number;
    /** The peer's outer path MTU from pn_pmtu while it is fresh (10 minutes); absent otherwise. */
    pathMtu?: number;
    /** ICMP "fragmentation needed" about our tunnel packets to the peer: received, and relayed to the inner sender. */
    fragNeededIn?: number;
    fragNeededRelayed?: number;
  }[];
  readonly drops: LoaderDrops;
  readonly dropped: number;
}

export function parseLoaderCounters(json: string): LoaderCounters {
  const v = JSON.parse(json) as LoaderCounters;
  if (!v || !Array.isArray(v.peers) || typeof v.drops !== 'object' || !v.drops || typeof v.dropped !== 'number')
    throw new Error(`podnet-bpf counters: unexpected output: ${json.slice(0, 200)}`);
  // Exactly the shared names, each a number (a reason the loader did not print counted nothing).
  const drops = zeroDrops(BPF_DROP_REASONS);
  for (const r of BPF_DROP_REASONS) {
    const n = (v.drops as Partial<Record<string, unknown>>)[r];
    if (n !== undefined && typeof n !== 'number') throw new Error(`podnet-bpf counters: drops.${r} is not a number: ${json.slice(0, 200)}`);
    drops[r] = n ?? 0;
  }
  return { ...v, drops };
}

/**
 * Loader counters -> the Datapath interface's shape. Peers are named by node (from the last
 * setPeers); drops keep their reasons, and `dropped` is their total by the shared rule
 * (droppedTotal: not the non-IPv4 packets the tunnel device itself emits, which are not traffic).
 */
export function toDatapathCounters(c: LoaderCounters, nodeByAddress: ReadonlyMap<string, string>): DatapathCounters {
  const peers: PeerCounters[] = c.peers
    .map((p) => ({
      node: nodeByAddress.get(p.address) ?? p.address,
      txPackets: p.txPackets,
      txBytes: p.txBytes,
      rxPackets: p.rxPackets,
      rxBytes: p.rxBytes,
      ...(p.pathMtu ? { pathMtu: p.pathMtu } : {}),
      ...(p.fragNeededRelayed !== undefined ? { fragNeededRelayed: p.fragNeededRelayed } : {}),
    }))
    .sort((a, b) => a.node.localeCompare(b.node));
  return { peers, dropped: droppedTotal(c.drops), drops: { ...c.drops } };
}

export interface HookStatus {
  readonly dev: string;
  readonly present: boolean;
  readonly attached: boolean;
  readonly progId: number;
  readonly name: string;
  readonly tag: string;
}
export interface LoaderStatus {
  readonly pinDir: string;
  readonly pinnedMaps: number;
  readonly mapsExpected: number;
  readonly local: string;
  readonly egress: HookStatus;
  readonly ingress: HookStatus;
}

export function parseLoaderStatus(json: string): LoaderStatus {
  const v = JSON.parse(json) as LoaderStatus;
  if (!v || typeof v.egress !== 'object' || typeof v.ingress !== 'object')
    throw new Error(`podnet-bpf status: unexpected output: ${json.slice(0, 200)}`);
  return v;
}

export type AttachAction = 'adopted' | 'attached' | 'replaced';
export function parseAttach(json: string): { egress: AttachAction; ingress: AttachAction } {
  const v = JSON.parse(json) as { egress: AttachAction; ingress: AttachAction };
  const ok = (a: unknown): boolean => a === 'adopted' || a === 'attached' || a === 'replaced';
  if (!ok(v?.egress) || !ok(v?.ingress)) throw new Error(`podnet-bpf attach: unexpected output: ${json.slice(0, 200)}`);
  return v;
}

/**
 * What `podnet-bpf status` says is missing for traffic to flow (empty when nothing): the
 * egress program on the tunnel, the ingress program on the underlay, every map pinned, and
 * the local address the programs encapsulate with.
 */
export function ebpfHealthProblems(
  s: LoaderStatus,
  expected: { readonly tunnelDevice: string; readonly underlayDevice: string; readonly localAddress: string },
): string[] {
  const out: string[] = [];
  if (!s.egress.attached) out.push(`no program attached to ${expected.tunnelDevice} egress`);
  if (!s.ingress.attached) out.push(`no program attached to ${expected.underlayDevice} ingress`);
  if (s.pinnedMaps < s.mapsExpected) out.push(`${s.pinnedMaps} of ${s.mapsExpected} maps pinned under ${s.pinDir}`);
  if (s.local !== expected.localAddress) out.push(`the programs encapsulate from ${s.local || 'no address'}, not ${expected.localAddress}`);
  return out;
}
