import { planFixes } from '../../../agent/reconcile/fixes';
import { parseLinks, parseNetManagers } from '../../../src/host/live-state';
import { desiredHostState, resolveNetwork, unmanagedConfigs } from '../../../src/model';
import { diffHost } from '../../../src/planner/host-diff';
import { liveAsDesired } from '../views/scenario';
import { referenceSpec } from '../reference-network';

const state = desiredHostState(resolveNetwork(referenceSpec), 'node1');
const [networkd, nm] = unmanagedConfigs('cluster');

describe('network managers leave podnet alone', () => {
  it('reads which managers are installed and podnet files there', () => {
    const text = `@dir /etc/systemd/network\n@file ${networkd!.path}\n${networkd!.content}`;
    expect(parseNetManagers(text)).toEqual({ dirs: ['/etc/systemd/network'], files: { [networkd!.path]: networkd!.content } });
    expect(
      parseNetManagers(`@dir /etc/systemd/network\n@dir /etc/NetworkManager/conf.d\n@file ${networkd!.path}\nx\n@file ${nm!.path}\ny\n`)
        .files,
    ).toEqual({ [networkd!.path]: 'x\n', [nm!.path]: 'y\n' });
  });

  it('writes the file of each installed manager, and only those', () => {
    const live = { ...liveAsDesired(state), netManagers: { dirs: ['/etc/systemd/network'], files: {} } };
    const diffs = diffHost(state, live);
    expect(diffs.map((d) => [d.kind, d.action, d.subject])).toEqual([
      ['unmanaged-config', 'create', '/etc/systemd/network/10-podnet-cluster.network'],
    ]);
    expect(planFixes(state, diffs).unmanagedConfigs.map((c) => c.manager)).toEqual(['systemd-networkd']);
    expect(
      diffHost(state, { ...live, netManagers: { dirs: ['/etc/systemd/network'], files: { [networkd!.path]: networkd!.content } } }),
    ).toEqual([]);
  });

  it("puts pods' veths back on cni0, and leaves Docker's and other veths alone", () => {
    const links = parseLinks(
      JSON.stringify([
        { ifindex: 7, ifname: 'veth1a2b3c4d', mtu: 1480, flags: ['UP'], link_netnsid: 0, linkinfo: { info_kind: 'veth' } },
        { ifindex: 8, ifname: 'veth5e6f7a8b', mtu: 1480, flags: ['UP'], link_netnsid: 1, master: 'cni0', linkinfo: { info_kind: 'veth' } },
        { ifindex: 9, ifname: 'veth1234567', mtu: 1500, flags: ['UP'], link_netnsid: 2, linkinfo: { info_kind: 'veth' } },
        { ifindex: 10, ifname: 'vethdeadbeef', mtu: 1500, flags: ['UP'], linkinfo: { info_kind: 'veth' } },
        // NetworkManager letting go of a veth it had claimed leaves it down, on cni0.
        { ifindex: 11, ifname: 'veth0c0d0e0f', mtu: 1480, flags: [], link_netnsid: 3, master: 'cni0', linkinfo: { info_kind: 'veth' } },
      ]),
    );
    expect(links[0]).toMatchObject({ peerNetns: true });
    expect(links[3]).toMatchObject({ peerNetns: false });
    const live = liveAsDesired(state);
    const diffs = diffHost(state, { ...live, links: [...live.links, ...links] });
    expect(diffs.map((d) => [d.kind, d.subject, d.actual])).toEqual([
      ['pod-off-bridge', 'veth1a2b3c4d', 'no master'],
      ['pod-off-bridge', 'veth0c0d0e0f', 'down'],
    ]);
    expect(planFixes(state, diffs).ipBatch).toEqual([
      'link set veth1a2b3c4d master cni0',
      'link set veth1a2b3c4d up',
      'link set veth0c0d0e0f master cni0',
      'link set veth0c0d0e0f up',
    ]);
  });
});
