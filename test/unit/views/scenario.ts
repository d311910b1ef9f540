// One network run, the same for every view's golden test: the reference network with
// master fresh (nothing installed, a usable Node on the host), node1 installed and running
// with someone else's route to node2's pods, a leftover podnet route, an older generation's
// route and address, and a renamed network's leftovers; node2 unreachable.
// The engine's own pure functions build the plan and drift from it.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LiveHostState } from '../../../src/host/live-state';
import { AGENT_STATUS_SCHEMA, resolveNetwork, serializeAgentStatus, type DesiredHostState } from '../../../src/model';
import type { Artifact, ArtifactSet } from '../../../src/engine/artifacts';
import { hostTargets, type HostTarget } from '../../../src/engine/host-plan';
import type { HostReading } from '../../../src/engine/host-reading';
import type { NetworkSnapshot } from '../../../src/engine/session';
import { referenceSpec } from '../reference-network';

const artifact = (name: string, remotePath: string): Artifact => ({
  name,
  localPath: `/build/dist/agent/${name}`,
  remotePath,
  sha256: `${name}-sha256`.padEnd(64, '0'),
  mode: 0o644,
});
export const artifacts: ArtifactSet = {
  agent: artifact('podnet-agent.js', '/usr/local/lib/podnet/podnet-agent.js'),
  extras: [artifact('podnet-bpf', '/usr/local/lib/podnet/podnet-bpf')],
  runtime: artifact('node', '/usr/local/lib/podnet/runtimes/0123456789abcdef/node'),
  agentBuild: '0123456789abcdef',
};

/** Live state exactly as `state` wants it (a TUN device, as the ebpf datapath makes it). */
export function liveAsDesired(state: DesiredHostState): LiveHostState {
  return {
    links: [
      { name: state.underlay.device, ifindex: 2, mtu: state.underlay.mtu, up: true },
      { name: state.tunnel.device, ifindex: 3, kind: 'tun', mtu: state.tunnel.mtu, up: true },
      { name: state.bridge.device, ifindex: 4, kind: 'bridge', mtu: 1500, up: true, mac: state.bridge.mac },
    ],
    addresses: [
      { device: state.underlay.device, cidr: `${state.underlay.address}/24` },
      { device: state.tunnel.device, cidr: state.tunnel.address },
      { device: state.bridge.device, cidr: state.bridge.address },
    ],
    routes: state.routes.map((r) => ({
      destination: r.destination,
      gateway: r.gateway,
      device: r.device,
      onlink: r.onlink,
      protocol: '152',
    })),
    subnetEnv: state.subnetEnv.content,
    nftTable: state.nftTable,
    ipForward: true,
    cniConfig: state.cni.content,
    cniConfFiles: [state.cni.file],
  };
}

function installed(t: HostTarget): HostReading {
  const live = liveAsDesired(t.state);
  return {
    live: {
      ...live,
      routes: [
        ...live.routes.map((r) =>
          r.destination === '10.244.2.0/24' ? { ...r, gateway: '192.168.0.99', device: 'eth0', onlink: false, protocol: '4' } : r,
        ),
        { destination: '10.244.9.0/24', gateway: '192.168.0.89', device: 'flannel.ipip', onlink: true, protocol: '152' },
        // An older generation's (the cluster was 10.243.0.0/16), and its address on the tunnel.
        { destination: '10.243.2.0/24', gateway: '192.168.0.82', device: 'flannel.ipip', onlink: true, protocol: '152' },
      ],
      addresses: [...live.addresses, { device: 'flannel.ipip', cidr: '10.243.1.0/32' }],
      // A renamed network's leftovers: its agent stopped, its files and table still there.
      podnetTraces: {
        units: { cluster: 'active', blue: 'inactive' },
        configs: ['cluster', 'blue'],
        statuses: ['cluster', 'blue'],
        nftTables: ['podnet_cluster', 'podnet_blue'],
      },
    },
    unit: { activeState: 'active', unitFileState: 'enabled', loadState: 'loaded' },
    unitFile: t.unit,
    config: t.config,
    status: serializeAgentStatus({
      schema: AGENT_STATUS_SCHEMA,
      state: 'degraded',
      configHash: t.configHash,
      pid: 812,
      version: '0.1.0',
      build: '0123456789abcdef',
      network: 'cluster',
      node: t.node,
      datapath: 'ebpf',
      passedOver: {},
      peers: [],
      repairs: 0,
      remaining: [],
    }),
    hashes: { [artifacts.agent.remotePath]: artifacts.agent.sha256, [artifacts.extras[0]!.remotePath]: artifacts.extras[0]!.sha256 },
    runtimeTarget: '/usr/bin/node',
    hostNode: { path: '/usr/bin/node', linked: true },
  };
}

const fresh: HostReading = {
  // Only its NIC (eth0 holding master's address, MTU 1500): the underlay podnet finds.
  live: {
    links: [{ name: 'eth0', ifindex: 2, mtu: 1500, up: true }],
    addresses: [{ device: 'eth0', cidr: '192.168.0.80/24' }],
    routes: [],
    ipForward: false,
  },
  unit: { activeState: 'inactive', unitFileState: '', loadState: 'not-found' },
  hashes: {},
  hostNode: { path: '/usr/bin/node', realPath: '/usr/bin/nodejs', version: 'v18.20.4' },
};

export function snapshot(): NetworkSnapshot {
  const network = resolveNetwork(referenceSpec);
  const targets = hostTargets(referenceSpec, network);
  const [master, node1, node2] = targets as [HostTarget, HostTarget, HostTarget];
  const node = (name: string) => network.nodes.find((n) => n.name === name)!;
  return {
    network,
    hosts: [
      { node: node('master'), target: master, read: { node: 'master', ok: true, reading: fresh } },
      { node: node('node1'), target: node1, read: { node: 'node1', ok: true, reading: installed(node1) } },
      {
        node: node('node2'),
        target: node2,
        read: {
          node: 'node2',
          ok: false,
          error: {
            kind: 'host-key-unknown',
            message: 'node2 (192.168.0.82:22): host key SHA256:n0tARealKeyJustAFixture is not in /root/.ssh/known_hosts',
          },
        },
      },
    ],
  };
}

const FIXTURES = join(__dirname, '..', '..', 'fixtures', 'views');

/**
 * Compares `actual` with test/fixtures/views/<name>. PODNET_UPDATE_GOLDEN=1 rewrites the file
 * instead (then review the diff: it is the output users and scripts will see).
 */
export function expectGolden(name: string, actual: string): void {
  const file = join(FIXTURES, name);
  if (process.env.PODNET_UPDATE_GOLDEN === '1' || !existsSync(file)) {
    if (process.env.PODNET_UPDATE_GOLDEN !== '1')
      throw new Error(`golden file ${file} is missing: run with PODNET_UPDATE_GOLDEN=1 to write it`);
    writeFileSync(file, actual);
    return;
  }
  expect(actual).toBe(readFileSync(file, 'utf8'));
}
