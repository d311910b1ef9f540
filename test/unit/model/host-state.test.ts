import { desiredHostState, parseSubnetEnv, renderAgentUnit, resolveNetwork, routeTableRows, UnknownNodeError } from '../../../src/model';
import { renderRouteTable } from '../../../src/views/host-state-view';
import { referenceSpec } from '../reference-network';

describe('desired host state', () => {
  const network = resolveNetwork(referenceSpec);
  const node1 = desiredHostState(network, 'node1');

  it("node1's routes are exactly DESIGN.md's route -n rows", () => {
    expect(routeTableRows(node1)).toEqual([
      { destination: '10.244.0.0', gateway: '192.168.0.80', genmask: '255.255.255.0', flags: 'UG', iface: 'flannel.ipip' },
      { destination: '10.244.1.0', gateway: '0.0.0.0', genmask: '255.255.255.0', flags: 'U', iface: 'cni0' },
      { destination: '10.244.2.0', gateway: '192.168.0.82', genmask: '255.255.255.0', flags: 'UG', iface: 'flannel.ipip' },
    ]);
    expect(renderRouteTable(node1).slice(1)).toEqual([
      '10.244.0.0      192.168.0.80    255.255.255.0   UG    flannel.ipip',
      '10.244.1.0      0.0.0.0         255.255.255.0   U     cni0',
      '10.244.2.0      192.168.0.82    255.255.255.0   UG    flannel.ipip',
    ]);
  });

  it('peer routes are onlink via the peer through flannel.ipip', () => {
    expect(node1.routes).toEqual([
      { destination: '10.244.0.0/24', gateway: '192.168.0.80', device: 'flannel.ipip', onlink: true, peer: 'master' },
      { destination: '10.244.2.0/24', gateway: '192.168.0.82', device: 'flannel.ipip', onlink: true, peer: 'node2' },
    ]);
  });

  it('the tunnel device is flannel.ipip, local node1, MTU 1480, <subnet>.0/32', () => {
    expect(node1.tunnel).toEqual({ device: 'flannel.ipip', local: '192.168.0.81', mtu: 1480, address: '10.244.1.0/32' });
    expect(node1.bridge).toEqual({ device: 'cni0', address: '10.244.1.1/24', mac: '0a:58:0a:f4:01:01' });
  });

  it('writes subnet.env as flannel does', () => {
    expect(node1.subnetEnv).toEqual({
      path: '/run/flannel/subnet.env',
      content: 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1480\nFLANNEL_IPMASQ=true\n',
    });
    expect(parseSubnetEnv(node1.subnetEnv.content)).toEqual({ network: '10.244.0.0/16', subnet: '10.244.1.1/24', mtu: 1480, ipMasq: true });
  });

  it('directRouting routes same-subnet peers via the underlay and keeps the tunnel for others', () => {
    const mixed = resolveNetwork({
      ...referenceSpec,
      backend: { type: 'ipip', directRouting: true },
      nodes: [...referenceSpec.nodes, { name: 'remote', address: '192.168.7.10' }],
    });
    const routes = desiredHostState(mixed, 'node1').routes;
    expect(routes.find((r) => r.peer === 'master')).toEqual({
      destination: '10.244.0.0/24',
      gateway: '192.168.0.80',
      device: 'eth0',
      onlink: false,
      peer: 'master',
    });
    expect(routes.find((r) => r.peer === 'remote')).toMatchObject({ device: 'flannel.ipip', onlink: true, gateway: '192.168.7.10' });
  });

  it('masquerades like flannel when ipMasq, and only forwards otherwise', () => {
    expect(node1.nftTable).toContain('ip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 return');
    expect(node1.nftTable).toContain('ip saddr != 10.244.0.0/16 ip daddr 10.244.1.0/24 return');
    const noMasq = desiredHostState(resolveNetwork({ ...referenceSpec, ipMasq: false }), 'node1');
    expect(noMasq.nftTable).not.toContain('masquerade');
    expect(noMasq.nftTable).toContain('ip saddr 10.244.0.0/16 accept');
  });

  it('a custom MTU and underlay MTU flow through', () => {
    const jumbo = desiredHostState(resolveNetwork({ ...referenceSpec, underlay: { mtu: 9000 } }), 'node2');
    expect(jumbo.tunnel.mtu).toBe(8980);
    expect(jumbo.subnetEnv.content).toContain('FLANNEL_MTU=8980');
  });

  it('names the nodes when asked for an unknown one', () => {
    expect(() => desiredHostState(network, 'node9')).toThrow(UnknownNodeError);
    expect(() => desiredHostState(network, 'node9')).toThrow(/master, node1, node2/);
  });

  it('the unit is hardened and limits capabilities per datapath', () => {
    const unit = renderAgentUnit('cluster', 'kernel');
    expect(unit).toContain('Restart=always');
    expect(unit).toContain('StartLimitIntervalSec=0');
    expect(unit).toContain('ProtectSystem=strict');
    expect(unit).toContain('CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW\n');
    expect(renderAgentUnit('cluster', 'ebpf')).toContain('CAP_BPF');
  });
});
