// What counts as stale podnet state on a host: an older generation of the network (a
// clusterCidr change), and other podnet networks (a rename's old name).
import { parsePodnetTraces, podnetTracesScript, type LiveHostState, type PodnetTraces } from '../../../src/host/live-state';
import { desiredHostState, EMPTY_RECORD, resolveNetwork, type NetworkSpec } from '../../../src/model';
import { diffHost } from '../../../src/planner/host-diff';
import { otherNetworks, ownTracesOn, runningOthersMessage } from '../../../src/planner/stale-state';
import { planFixes } from '../../../agent/reconcile/fixes';
import { referenceSpec } from '../reference-network';
import { liveAsDesired } from '../views/scenario';
import { execFileSync } from 'node:child_process';

const old = desiredHostState(resolveNetwork(referenceSpec), 'node1');
const movedSpec: NetworkSpec = { ...referenceSpec, clusterCidr: '10.246.0.0/16' };
const moved = desiredHostState(resolveNetwork(movedSpec), 'node1');
/** The host after the agent took the new CIDR on: the new state beside the old generation's. */
function afterMove(owned: LiveHostState['owned']): LiveHostState {
  const before = liveAsDesired(old);
  const now = liveAsDesired(moved);
  return {
    ...now,
    addresses: [...now.addresses, ...before.addresses.filter((a) => a.device !== old.underlay.device)],
    routes: [...now.routes, ...before.routes],
    ...(owned ? { owned } : {}),
  };
}

describe('an older generation of the same network', () => {
  it("a clusterCidr change: the old proto-152 routes and podnet's old addresses are stale, and the agent deletes them", () => {
    const live = afterMove({ ...EMPTY_RECORD, createdLinks: ['cni0'] });
    const stale = diffHost(moved, live).filter((d) => d.kind.endsWith('-stale'));
    expect(stale.map((d) => [d.kind, d.action, d.subject])).toEqual([
      ['route-stale', 'delete', '10.244.0.0/24'],
      ['route-stale', 'delete', '10.244.2.0/24'],
      ['address-stale', 'delete', '10.244.1.0/32 dev flannel.ipip'],
      ['address-stale', 'delete', '10.244.1.1/24 dev cni0'],
    ]);
    expect(diffHost(moved, live).filter((d) => !d.kind.endsWith('-stale'))).toEqual([]);
    expect(planFixes(moved, stale).ipBatch).toEqual([
      'route del 10.244.0.0/24 proto 152',
      'route del 10.244.2.0/24 proto 152',
      'addr del 10.244.1.0/32 dev flannel.ipip',
      'addr del 10.244.1.1/24 dev cni0',
    ]);
  });

  it("cni0's other addresses are podnet's only as the ownership record says: none without one, only those noted on a bridge it found", () => {
    const onBridge = (live: LiveHostState) =>
      diffHost(moved, live)
        .filter((d) => d.kind === 'address-stale' && d.subject.endsWith('cni0'))
        .map((d) => d.subject);
    expect(onBridge(afterMove(undefined))).toEqual([]);
    const adopted = { ...EMPTY_RECORD, adoptedLinks: [{ name: 'cni0', addedAddresses: ['10.244.1.1/24', '10.246.1.1/24'] }] };
    const withForeign = afterMove(adopted);
    expect(onBridge({ ...withForeign, addresses: [...withForeign.addresses, { device: 'cni0', cidr: '10.88.0.1/16' }] })).toEqual([
      '10.244.1.1/24 dev cni0',
    ]);
    // A cni0 podnet created, and an admin's address added to it later: only what podnet noted goes.
    const created = { ...EMPTY_RECORD, createdLinks: ['cni0'], createdLinkAddresses: { cni0: ['10.244.1.1/24', '10.246.1.1/24'] } };
    const withAdmin = afterMove(created);
    const admin = { device: 'cni0', cidr: '192.168.77.1/24' };
    const live = { ...withAdmin, addresses: [...withAdmin.addresses, admin] };
    expect(onBridge(live)).toEqual(['10.244.1.1/24 dev cni0']);
    expect(planFixes(moved, diffHost(moved, live)).ipBatch).not.toContain('addr del 192.168.77.1/24 dev cni0');
    // An older agent's record (no addresses noted on the link it created): all of them, as before.
    expect(onBridge({ ...afterMove({ ...EMPTY_RECORD, createdLinks: ['cni0'] }), addresses: live.addresses })).toContain(
      '192.168.77.1/24 dev cni0',
    );
  });

  it('a proto-152 route outside the cluster that goes neither through the tunnel nor to a peer is not taken for stale', () => {
    const live = liveAsDesired(moved);
    const viaRouter = { destination: '172.16.0.0/24', gateway: '192.168.0.1', device: 'eth0', onlink: false, protocol: '152' };
    expect(diffHost(moved, { ...live, routes: [...live.routes, viaRouter] })).toEqual([]);
    // A directRouting route of the old generation (straight to a peer) is.
    const direct = { destination: '10.244.2.0/24', gateway: '192.168.0.82', device: 'eth0', onlink: false, protocol: '152' };
    expect(diffHost(moved, { ...live, routes: [...live.routes, direct] }).map((d) => d.kind)).toEqual(['route-stale']);
  });
});

describe('other podnet networks on the host', () => {
  const traces: PodnetTraces = {
    units: { cluster: 'active', blue: 'inactive', red: 'activating' },
    configs: ['cluster', 'blue', 'red', 'gone'],
    statuses: ['cluster', 'blue'],
    nftTables: ['podnet_cluster', 'podnet_blue', 'podnet_ipip', 'podnet_orphan'],
  };

  it("lists each other network with what is there and whether its agent runs; the kernel datapath's table is no network's", () => {
    expect(otherNetworks('cluster', traces, true)).toEqual([
      {
        network: 'blue',
        unitState: 'inactive',
        running: false,
        hasConfig: true,
        teardown: false,
        pieces: ['podnet-blue.service (inactive)', 'config', 'status', 'nft table podnet_blue'],
        nftTables: ['podnet_blue'],
      },
      { network: 'gone', running: false, hasConfig: true, teardown: false, pieces: ['config'], nftTables: [] },
      {
        network: 'red',
        unitState: 'activating',
        running: true,
        hasConfig: true,
        teardown: false,
        pieces: ['podnet-red.service (activating)', 'config'],
        nftTables: [],
      },
      { running: false, hasConfig: false, teardown: false, pieces: ['nft table podnet_orphan'], nftTables: ['podnet_orphan'] },
    ]);
    expect(otherNetworks('cluster', undefined, false)).toEqual([]);
  });

  it("runs another network's own teardown only where this network has left nothing of its own (record, config, status), whatever its unit's state", () => {
    const blue = { units: { blue: 'inactive' }, configs: ['blue'], statuses: [], nftTables: [] };
    const teardown = (t: PodnetTraces, record: boolean) => otherNetworks('cluster', t, record).map((o) => o.teardown);
    // A rename's first apply: nothing of 'cluster' yet, blue's teardown takes its devices and routes.
    expect(teardown(blue, false)).toEqual([true]);
    // 'cluster' failed or restarting (no unit in the traces: the host read has its own unit's
    // state): its devices, routes and pins may carry its traffic, so blue goes by name.
    expect(teardown(blue, true)).toEqual([false]);
    expect(teardown({ ...blue, configs: ['blue', 'cluster'] }, false)).toEqual([false]);
    expect(teardown({ ...blue, statuses: ['cluster'] }, false)).toEqual([false]);
    expect(ownTracesOn('cluster', blue, false)).toBe(false);
  });

  it('the refusal names the running network, why, and what to do', () => {
    const running = otherNetworks('green', { units: { blue: 'active' }, configs: ['blue'], statuses: [], nftTables: [] }, false);
    expect(runningOthersMessage('green', running)).toBe(
      "this host already runs podnet network 'blue' (podnet-blue.service is active): flannel.ipip, cni0 and /run/flannel/subnet.env exist once per host, so network 'green' cannot go beside it; destroy 'blue' on this host first (podnet destroy with its manifest), or stop and disable its agent (systemctl disable --now podnet-blue.service) and apply again: apply then removes what it left",
    );
  });

  it('reads the traces in one sh script that parses, and parses what it prints', () => {
    execFileSync('sh', ['-n', '-c', podnetTracesScript('cluster')]);
    // Its own unit is the host read's: no systemctl for it here.
    expect(podnetTracesScript('cluster')).toContain(
      `[ "$n" != cluster ] || continue; grep -qF /usr/local/lib/podnet/podnet-agent.js "$f" || continue`,
    );
    expect(
      parsePodnetTraces('@unit blue inactive\n@unit lab \n@config blue\n@status blue\n@table podnet_blue\n@table podnet_ipip\n'),
    ).toEqual({
      units: { blue: 'inactive', lab: 'unknown' },
      configs: ['blue'],
      statuses: ['blue'],
      nftTables: ['podnet_blue', 'podnet_ipip'],
    });
  });
});
