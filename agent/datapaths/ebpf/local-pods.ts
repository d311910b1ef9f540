// Local pods on the CNI bridge, for the decap fast path (pod IP -> host veth, MACs).
//
// Where the facts come from, in order of trust:
//   1. each veth enslaved to cni0 (`ip -json -d link show master cni0`) names its peer's
//      ifindex and netns id; `ip -json netns list-id` maps the id to a named netns (kubelet's
//      runtimes and the CNI tooling name them under /run/netns); `ip -n NAME -json addr show`
//      then gives the pod interface's MAC and IPv4. This finds a pod the moment CNI wired it,
//      before it has sent a packet.
//   2. for veths whose netns has no name: the bridge's neighbour table (pod IP -> MAC) plus its
//      FDB (MAC -> port). Such pods are found once they have talked; until then their
//      packets take the normal stack path, which is slower but correct.
// A pod missing from the table is never wrong, only slower; a stale entry could misdeliver, so
// only pods whose port is currently enslaved to the bridge are ever listed. And only addresses
// IPAM could have given (isAssignablePodAddress): a pod with NET_ADMIN that puts the node's
// tunnel address (.0), gateway (.1) or the broadcast address on its interface must not be
// handed the node's own traffic by the decap fast path.
import type { Runner } from '../../host/runner';
import { isAssignablePodAddress } from '../../../src/model/pod-address';

export interface LocalPod {
  readonly ip: string;
  /** Host-side veth ifindex (bpf_redirect_peer target). */
  readonly ifindex: number;
  readonly podMac: string;
  /** Source MAC for delivered packets: the bridge's (the pod's gateway). */
  readonly hostMac: string;
}

export interface BridgePort {
  readonly ifname: string;
  readonly ifindex: number;
  /** Peer ifindex inside the pod's netns. */
  readonly peerIfindex?: number;
  readonly netnsId?: number;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const asArray = (text: string): unknown[] => {
  const t = text.trim();
  if (!t) return [];
  const v = JSON.parse(t) as unknown;
  return Array.isArray(v) ? v : [];
};
type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null;

/** `ip -json link show dev cni0` -> the bridge's MAC. */
export function parseBridgeMac(json: string): string | undefined {
  const l = asArray(json)[0];
  const mac = isObj(l) && typeof l.address === 'string' ? l.address.toLowerCase() : undefined;
  return mac && MAC.test(mac) ? mac : undefined;
}

/** `ip -json -d link show master cni0` -> veth ports (other kinds are ignored). */
export function parseBridgePorts(json: string): BridgePort[] {
  const out: BridgePort[] = [];
  for (const l of asArray(json)) {
    if (!isObj(l) || typeof l.ifname !== 'string' || typeof l.ifindex !== 'number') continue;
    const kind = isObj(l.linkinfo) ? l.linkinfo.info_kind : undefined;
    if (kind !== undefined && kind !== 'veth') continue;
    out.push({
      ifname: l.ifname,
      ifindex: l.ifindex,
      peerIfindex: typeof l.link_index === 'number' ? l.link_index : undefined,
      netnsId: typeof l.link_netnsid === 'number' ? l.link_netnsid : undefined,
    });
  }
  return out;
}

/** `ip -json netns list-id` -> nsid -> netns name (only named ones). */
export function parseNetnsIds(json: string): Map<number, string> {
  const m = new Map<number, string>();
  for (const e of asArray(json)) {
    if (isObj(e) && typeof e.nsid === 'number' && typeof e.name === 'string' && e.name) m.set(e.nsid, e.name);
  }
  return m;
}

/** `ip -n POD -json addr show` -> MAC and IPv4s (assignable in podCidr) of the interface with ifindex. */
export function parsePodInterface(json: string, ifindex: number, podCidr: string): { mac: string; ips: string[] } | undefined {
  for (const l of asArray(json)) {
    if (!isObj(l) || l.ifindex !== ifindex || typeof l.address !== 'string') continue;
    const mac = l.address.toLowerCase();
    if (!MAC.test(mac)) return undefined;
    const ips = (Array.isArray(l.addr_info) ? l.addr_info : [])
      .filter((a): a is Obj => isObj(a) && a.family === 'inet' && typeof a.local === 'string')
      .map((a) => a.local as string)
      .filter((ip) => isAssignablePodAddress(podCidr, ip));
    return { mac, ips };
  }
  return undefined;
}

/**
 * Neighbour entries on the bridge (`ip -json neigh show dev cni0`) joined with its FDB
 * (`bridge -json fdb show br cni0`): pod IP -> MAC -> port. Only usable states, only IPs a pod
 * can hold in podCidr, only ports in `ports`.
 */
export function podsFromNeighbours(
  neighJson: string,
  fdbJson: string,
  ports: readonly BridgePort[],
  podCidr: string,
  hostMac: string,
): LocalPod[] {
  const portByName = new Map(ports.map((p) => [p.ifname, p]));
  const portByMac = new Map<string, BridgePort>();
  for (const f of asArray(fdbJson)) {
    if (!isObj(f) || typeof f.mac !== 'string' || typeof f.ifname !== 'string') continue;
    const flags = Array.isArray(f.flags) ? f.flags : [];
    if (flags.includes('self') || f.state === 'permanent') continue; // the bridge's own / the port's own MAC
    const port = portByName.get(f.ifname);
    if (port) portByMac.set(f.mac.toLowerCase(), port);
  }
  const out: LocalPod[] = [];
  for (const n of asArray(neighJson)) {
    if (!isObj(n) || typeof n.dst !== 'string' || typeof n.lladdr !== 'string') continue;
    const states = Array.isArray(n.state) ? n.state : [];
    if (states.includes('FAILED') || states.includes('INCOMPLETE')) continue;
    if (!isAssignablePodAddress(podCidr, n.dst)) continue;
    const mac = n.lladdr.toLowerCase();
    const port = portByMac.get(mac);
    if (port) out.push({ ip: n.dst, ifindex: port.ifindex, podMac: mac, hostMac });
  }
  return out;
}

/** First source wins per IP (netns facts before neighbour guesses); an IP seen on two ports is left out. */
export function mergePods(...sources: readonly (readonly LocalPod[])[]): LocalPod[] {
  const byIp = new Map<string, LocalPod>();
  const conflicted = new Set<string>();
  sources.forEach((src, level) => {
    const thisLevel = new Map<string, LocalPod>();
    for (const p of src) {
      if (byIp.has(p.ip)) continue; // decided by a more trusted source
      const prev = thisLevel.get(p.ip);
      if (prev && (prev.ifindex !== p.ifindex || prev.podMac !== p.podMac)) conflicted.add(p.ip);
      thisLevel.set(p.ip, p);
    }
    for (const [ip, p] of thisLevel) if (!conflicted.has(ip)) byIp.set(ip, p);
    void level;
  });
  return [...byIp.values()].sort((a, b) => a.ip.localeCompare(b.ip, 'en', { numeric: true }));
}

export interface PodDiff {
  /** Entries to write (new or changed). */
  readonly set: readonly LocalPod[];
  /** Pod IPs to remove. */
  readonly del: readonly string[];
}

/** What must change to turn `current` into `desired` (pure; an empty diff means nothing to do). */
export function diffPods(desired: readonly LocalPod[], current: readonly LocalPod[]): PodDiff {
  const cur = new Map(current.map((p) => [p.ip, p]));
  const want = new Map(desired.map((p) => [p.ip, p]));
  const set = [...want.values()].filter((p) => {
    const c = cur.get(p.ip);
    return !c || c.ifindex !== p.ifindex || c.podMac !== p.podMac || c.hostMac !== p.hostMac;
  });
  const del = [...cur.keys()].filter((ip) => !want.has(ip));
  return { set, del };
}

export function isEmptyDiff(d: PodDiff): boolean {
  return d.set.length === 0 && d.del.length === 0;
}

/** Reads the live pod table for `bridge` (see the header for the sources). */
export async function discoverLocalPods(run: Runner, opts: { bridge: string; podCidr: string }): Promise<LocalPod[]> {
  const { bridge, podCidr } = opts;
  const br = await run('ip', ['-json', 'link', 'show', 'dev', bridge]);
  if (br.code !== 0) return []; // no bridge yet: no pods yet
  const hostMac = parseBridgeMac(br.stdout);
  if (!hostMac) return [];
  const portsRes = await run('ip', ['-json', '-d', 'link', 'show', 'master', bridge]);
  const ports = portsRes.code === 0 ? parseBridgePorts(portsRes.stdout) : [];
  if (ports.length === 0) return [];

  const ids = await run('ip', ['-json', 'netns', 'list-id']);
  const nsNames = ids.code === 0 ? parseNetnsIds(ids.stdout) : new Map<number, string>();
  const fromNetns: LocalPod[] = [];
  const byNs = new Map<string, BridgePort[]>();
  for (const p of ports) {
    const ns = p.netnsId !== undefined ? nsNames.get(p.netnsId) : undefined;
    if (ns && p.peerIfindex !== undefined) byNs.set(ns, [...(byNs.get(ns) ?? []), p]);
  }
  for (const [ns, nsPorts] of byNs) {
    const a = await run('ip', ['-n', ns, '-json', 'addr', 'show']);
    if (a.code !== 0) continue; // the pod went away meanwhile
    for (const p of nsPorts) {
      const itf = parsePodInterface(a.stdout, p.peerIfindex!, podCidr);
      for (const ip of itf?.ips ?? []) fromNetns.push({ ip, ifindex: p.ifindex, podMac: itf!.mac, hostMac });
    }
  }

  const [neigh, fdb] = await Promise.all([
    run('ip', ['-json', 'neigh', 'show', 'dev', bridge]),
    run('bridge', ['-json', 'fdb', 'show', 'br', bridge]),
  ]);
  const fromNeigh = neigh.code === 0 && fdb.code === 0 ? podsFromNeighbours(neigh.stdout, fdb.stdout, ports, podCidr, hostMac) : [];
  return mergePods(fromNetns, fromNeigh);
}
