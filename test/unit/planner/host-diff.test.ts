import { IP_ROUTES_ARGV, parseRoutes, type LiveHostState } from '../../../src/host/live-state';
import { hostReadScript } from '../../../src/engine/host-reading';
import { desiredHostState, resolveNetwork } from '../../../src/model';
import { diffHost, normalizeNft } from '../../../src/planner/host-diff';
import { planFixes } from '../../../agent/reconcile/fixes';
import { kernelTunnelBatch } from '../../../agent/datapaths/kernel';
import { toDatapathHost } from '../../../agent/datapaths/datapath';
import { referenceSpec } from '../reference-network';
import { liveInSync, nftListed } from '../live-fixtures';

const state = desiredHostState(resolveNetwork(referenceSpec), 'node1');
const inSync = liveInSync(state);

describe('host diff and fixes', () => {
  it('parses iproute2 JSON', () => {
    expect(inSync.links.find((l) => l.name === 'flannel.ipip')).toEqual({
      name: 'flannel.ipip',
      ifindex: 3,
      kind: 'tun',
      mtu: 1480,
      up: true,
    });
    expect(inSync.routes[0]).toEqual({
      destination: '10.244.0.0/24',
      gateway: '192.168.0.80',
      device: 'flannel.ipip',
      onlink: true,
      protocol: '152',
    });
  });

  it('finds nothing when the host matches (nft canonical form included)', () => {
    expect(diffHost(state, inSync)).toEqual([]);
    expect(normalizeNft(nftListed)).toBe(normalizeNft(state.nftTable));
  });

  it('a deleted route is missing and is re-added with podnet proto', () => {
    const live = { ...inSync, routes: inSync.routes.filter((r) => r.destination !== '10.244.2.0/24') };
    const diffs = diffHost(state, live);
    expect(diffs).toEqual([
      {
        kind: 'route-missing',
        action: 'create',
        subject: '10.244.2.0/24',
        expected: '10.244.2.0/24 via 192.168.0.82 dev flannel.ipip onlink',
      },
    ]);
    expect(planFixes(state, diffs).ipBatch).toEqual(['route replace 10.244.2.0/24 via 192.168.0.82 dev flannel.ipip onlink proto 152']);
  });

  it('removes only podnet-owned extra routes, never a user route (nor a proto-152 one via a router, outside the cluster)', () => {
    const live = {
      ...inSync,
      routes: [
        ...inSync.routes,
        { destination: '10.244.9.0/24', gateway: '192.168.0.89', device: 'flannel.ipip', onlink: true, protocol: '152' },
        { destination: '10.244.8.0/24', gateway: '192.168.0.88', device: 'eth0', onlink: false, protocol: '3' },
        { destination: '172.16.0.0/24', gateway: '192.168.0.1', device: 'eth0', onlink: false, protocol: '152' },
      ],
    };
    const diffs = diffHost(state, live);
    expect(diffs.map((d) => [d.kind, d.subject])).toEqual([['route-extra', '10.244.9.0/24']]);
    expect(planFixes(state, diffs).ipBatch).toEqual(['route del 10.244.9.0/24 proto 152']);
  });

  it('reads routes with numeric protocols, so a name for 152 in rt_protos.d cannot hide podnet routes', () => {
    // Agent (read and teardown) and engine read routes with this one argv.
    expect(IP_ROUTES_ARGV).toEqual(['ip', '-N', '-json', '-4', 'route', 'show', 'table', 'main']);
    expect(hostReadScript('cluster', state.cni)).toContain(
      "sec routes; ip -N -json -4 route show table main 2>/dev/null && echo '@@present@@' || echo '@@failed@@'\n",
    );
    // iproute2 leaves the protocol out for boot routes.
    expect(parseRoutes(JSON.stringify([{ dst: '10.244.5.0/24', dev: 'eth0', flags: [] }]))[0]!.protocol).toBe('3');
  });

  it("reports someone else's route to a peer's subnet and leaves it alone", () => {
    const live = {
      ...inSync,
      routes: inSync.routes.map((r) =>
        r.destination === '10.244.2.0/24' ? { ...r, gateway: '192.168.0.99', device: 'eth0', onlink: false, protocol: '4' } : r,
      ),
    };
    const diffs = diffHost(state, live);
    expect(diffs).toEqual([
      {
        kind: 'route-foreign',
        action: 'report',
        subject: '10.244.2.0/24',
        expected: '10.244.2.0/24 via 192.168.0.82 dev flannel.ipip onlink',
        actual: '10.244.2.0/24 via 192.168.0.99 dev eth0 proto 4',
      },
    ]);
    expect(planFixes(state, diffs).ipBatch).toEqual([]);
    const own = {
      ...inSync,
      routes: inSync.routes.map((r) => (r.destination === '10.244.2.0/24' ? { ...r, gateway: '192.168.0.99' } : r)),
    };
    expect(planFixes(state, diffHost(state, own)).ipBatch).toEqual([
      'route replace 10.244.2.0/24 via 192.168.0.82 dev flannel.ipip onlink proto 152',
    ]);
  });

  it('a missing tunnel device is recreated and its routes re-added', () => {
    const live = {
      ...inSync,
      links: inSync.links.filter((l) => l.name !== 'flannel.ipip'),
      routes: inSync.routes.filter((r) => r.device !== 'flannel.ipip'),
      addresses: inSync.addresses.filter((a) => a.device !== 'flannel.ipip'),
    };
    const plan = planFixes(state, diffHost(state, live));
    expect(plan.ensureTunnel).toBe(true);
    expect(plan.ipBatch).toEqual([
      'route replace 10.244.0.0/24 via 192.168.0.80 dev flannel.ipip onlink proto 152',
      'route replace 10.244.2.0/24 via 192.168.0.82 dev flannel.ipip onlink proto 152',
    ]);
  });

  it('detects a wrong MTU, a wrong kind for a kernel datapath, subnet.env and masquerade drift', () => {
    const live: LiveHostState = {
      ...inSync,
      links: inSync.links.map((l) => (l.name === 'flannel.ipip' ? { ...l, mtu: 1400 } : l)),
      subnetEnv: undefined,
      nftTable: undefined,
      ipForward: false,
    };
    const kinds = diffHost(state, live).map((d) => d.kind);
    expect(kinds).toEqual(['tunnel-mtu', 'subnet-env', 'masquerade', 'ip-forward']);
    const kernelState = { ...state, datapath: 'kernel' as const };
    expect(diffHost(kernelState, inSync).map((d) => d.kind)).toEqual(['tunnel-wrong-kind']);
    const plan = planFixes(state, diffHost(state, live));
    expect(plan.writeSubnetEnv).toBe(true);
    expect(plan.nftScript).toMatch(/^table ip podnet_cluster\ndelete table ip podnet_cluster\ntable ip podnet_cluster \{/);
    expect(plan.enableIpForward).toBe(true);
  });

  it('the kernel datapath creates flannel.ipip exactly as flannel does', () => {
    expect(kernelTunnelBatch(toDatapathHost(state))).toEqual([
      'link add flannel.ipip type ipip remote any local 192.168.0.81 ttl inherit nopmtudisc',
      'link set flannel.ipip mtu 1480',
      'addr replace 10.244.1.0/32 dev flannel.ipip',
      'link set flannel.ipip up',
    ]);
  });

  it('a missing bridge is created with its gateway address', () => {
    const live = {
      ...inSync,
      links: inSync.links.filter((l) => l.name !== 'cni0'),
      addresses: inSync.addresses.filter((a) => a.device !== 'cni0'),
    };
    expect(planFixes(state, diffHost(state, live)).ipBatch).toEqual([
      'link add cni0 address 0a:58:0a:f4:01:01 type bridge',
      'addr replace 10.244.1.1/24 dev cni0',
      'link set cni0 up',
    ]);
  });

  it("a bridge following its ports' MACs gets the fixed one (removing a pod must not change the gateway MAC)", () => {
    const live = { ...inSync, links: inSync.links.map((l) => (l.name === 'cni0' ? { ...l, mac: '6a:3d:9f:65:f7:87' } : l)) };
    const diffs = diffHost(state, live);
    expect(diffs).toEqual([
      { kind: 'bridge-mac', action: 'update', subject: 'cni0', expected: '0a:58:0a:f4:01:01', actual: '6a:3d:9f:65:f7:87' },
    ]);
    expect(planFixes(state, diffs).ipBatch).toEqual(['link set cni0 address 0a:58:0a:f4:01:01']);
  });
});
