import { desiredHostState, hostRouteTo, peerPathFromRoutes, resolveNetwork, type HostRoute } from '../../../src/model';
import { referenceSpec } from '../reference-network';

// node1 reaches master on its link, and everything else of 192.168.0.0/24 through master.
const routes: HostRoute[] = [
  { destination: '0.0.0.0/0', gateway: '192.168.0.254', device: 'eth0' },
  { destination: '192.168.0.0/24', gateway: '192.168.0.80', device: 'eth0' },
  { destination: '192.168.0.80/32', device: 'eth0' },
  { destination: '10.244.2.0/24', gateway: '192.168.0.82', device: 'flannel.ipip' },
];

describe("directRouting follows flannel's rule: direct only when the host's route to the peer has no gateway", () => {
  it('looks the peer up by longest prefix', () => {
    expect(hostRouteTo('192.168.0.80', routes)).toEqual(routes[2]);
    expect(hostRouteTo('192.168.0.82', routes)).toEqual(routes[1]);
    expect(hostRouteTo('10.1.2.3', routes)).toEqual(routes[0]);
    expect(hostRouteTo('10.1.2.3', routes.slice(1))).toBeUndefined();
  });

  it('says per peer direct or tunnelled, and why', () => {
    expect(peerPathFromRoutes('192.168.0.80', routes)).toEqual({
      tunnelled: false,
      why: 'on a link of this host (192.168.0.80/32 dev eth0)',
    });
    expect(peerPathFromRoutes('192.168.0.82', routes)).toEqual({
      tunnelled: true,
      why: "the host's route to it (192.168.0.0/24 via 192.168.0.80 dev eth0) has a gateway",
    });
    expect(peerPathFromRoutes('192.168.0.82', [])).toEqual({ tunnelled: true, why: 'the host has no route to 192.168.0.82' });
  });

  it("routes the desired state by the host's table, not the model's prefix, when it has been read", () => {
    const network = resolveNetwork({ ...referenceSpec, backend: { type: 'ipip', directRouting: true } });
    const onHost = desiredHostState(network, 'node1', undefined, routes);
    expect(onHost.routes.map((r) => [r.peer, r.device])).toEqual([
      ['master', 'eth0'],
      ['node2', 'flannel.ipip'],
    ]);
    const offline = desiredHostState(network, 'node1');
    expect(offline.peers.map((p) => [p.node, p.tunnelled])).toEqual([
      ['master', false],
      ['node2', false],
    ]);
    expect(offline.peers[0]!.why).toMatch(/declared underlay prefix/);
    expect(
      desiredHostState(resolveNetwork(referenceSpec), 'node1', undefined, routes).peers.every(
        (p) => p.tunnelled && p.why === 'directRouting is off',
      ),
    ).toBe(true);
  });
});
