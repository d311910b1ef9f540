import {
  desiredHostState,
  discoverUnderlay,
  findNode,
  resolveNetwork,
  UnderlayError,
  type NetworkSpec,
  type UnderlayFacts,
} from '../../../src/model';
import { referenceSpec } from '../reference-network';

/** node1's host: `ens33` at `mtu` holding 192.168.0.81, a docker0 beside it. */
function host(mtu = 1450, device = 'ens33'): UnderlayFacts {
  return {
    links: [
      { name: 'lo', mtu: 65536 },
      { name: device, mtu },
      { name: 'docker0', mtu: 1500 },
    ],
    addresses: [
      { device: 'lo', cidr: '127.0.0.1/8' },
      { device, cidr: '192.168.0.81/24' },
      { device: 'docker0', cidr: '172.17.0.1/16' },
    ],
  };
}

function discover(spec: NetworkSpec, facts: UnderlayFacts) {
  const network = resolveNetwork(spec);
  return discoverUnderlay(network, findNode(network, 'node1'), facts);
}

describe('underlay discovery, as flanneld finds its interface', () => {
  it('takes the interface holding the node address and its MTU - 20 when nothing is declared', () => {
    expect(discover(referenceSpec, host())).toEqual({
      device: 'ens33',
      deviceSource: 'detected',
      mtu: 1450,
      mtuSource: 'detected',
      tunnelMtu: 1430,
      tunnelMtuSource: 'detected',
    });
  });

  it('puts the found MTU everywhere the tunnel MTU goes: device, subnet.env, directRouting routes use the found device', () => {
    const network = resolveNetwork({ ...referenceSpec, backend: { type: 'ipip', directRouting: true } });
    const state = desiredHostState(network, 'node1', discoverUnderlay(network, findNode(network, 'node1'), host()));
    expect(state.tunnel.mtu).toBe(1430);
    expect(state.subnetEnv.content).toContain('FLANNEL_MTU=1430\n');
    expect(state.routes.every((r) => r.device === 'ens33')).toBe(true);
  });

  it('keeps declared values and says so', () => {
    const spec = {
      ...referenceSpec,
      mtu: 1400,
      nodes: referenceSpec.nodes.map((n) => (n.name === 'node1' ? { ...n, underlayInterface: 'ens33' } : n)),
    };
    expect(discover(spec, host())).toEqual({
      device: 'ens33',
      deviceSource: 'declared',
      mtu: 1450,
      mtuSource: 'detected',
      tunnelMtu: 1400,
      tunnelMtuSource: 'declared',
    });
  });

  it('fails naming the host, what exists and what to set', () => {
    const declared = { ...referenceSpec, underlay: { interface: 'eth0' } };
    expect(() => discover(declared, host())).toThrow(UnderlayError);
    expect(() => discover(declared, host())).toThrow(
      /host node1 \(192.168.0.81\): the declared underlay interface eth0 does not exist; the host has ens33 \(mtu 1450, 192.168.0.81\/24\), docker0 .*Set underlayInterface/,
    );
    expect(() => discover({ ...referenceSpec, underlay: { interface: 'docker0' } }, host())).toThrow(/docker0 does not hold 192.168.0.81/);
    expect(() => discover(referenceSpec, host(1500, 'ens33'))).not.toThrow();
    const moved: UnderlayFacts = { links: host().links, addresses: host().addresses.filter((a) => a.device !== 'ens33') };
    expect(() => discover(referenceSpec, moved)).toThrow(/no interface holds 192.168.0.81/);
  });

  it('refuses a declared MTU above what the underlay carries, with the number to set', () => {
    expect(() => discover({ ...referenceSpec, mtu: 1480 }, host())).toThrow(
      /declared mtu 1480 is above what the underlay carries \(ens33's MTU 1450 - 20 = 1430\)\. Set mtu to at most 1430/,
    );
    expect(() => discover({ ...referenceSpec, underlay: { mtu: 1500 } }, host())).toThrow(/underlay.mtu 1500 is above ens33's MTU 1450/);
    expect(discover({ ...referenceSpec, underlay: { mtu: 1400 } }, host())).toMatchObject({
      mtu: 1400,
      mtuSource: 'declared',
      tunnelMtu: 1380,
    });
  });

  it('offline, with nothing read, assumes eth0 at 1500 and says it is a default', () => {
    const state = desiredHostState(resolveNetwork(referenceSpec), 'node1');
    expect(state.underlay).toMatchObject({
      device: 'eth0',
      deviceSource: 'default',
      mtu: 1500,
      tunnelMtu: 1480,
      tunnelMtuSource: 'default',
    });
  });
});
