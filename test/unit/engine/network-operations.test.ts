// applyNetwork and destroyNetwork over a fake SSH pool: hosts are worked on at most
// --parallel at a time in every phase (they were all at once before), a host that fails
// carries an error kind, and the results come back in the order asked for.
import type { ArtifactSet } from '../../../src/engine/artifacts';
import { applyNetwork, type ApplyProgress } from '../../../src/engine/apply';
import { destroyNetwork } from '../../../src/engine/destroy';
import { hostTargets, type HostTarget } from '../../../src/engine/host-plan';
import type { HostReading } from '../../../src/engine/host-reading';
import { sshTargetOf, type EngineSession, type NetworkSnapshot } from '../../../src/engine/session';
import { AGENT_STATUS_SCHEMA, buildManifest, resolveNetwork, serializeAgentStatus, type NetworkSpec } from '../../../src/model';
import { SshError, SshPool, type SshConnection, type SshTarget } from '../../../src/ssh';
import { referenceSpec } from '../reference-network';
import { artifacts, liveAsDesired } from '../views/scenario';

const spec: NetworkSpec = {
  ...referenceSpec,
  nodes: Array.from({ length: 6 }, (_, i) => ({ name: `n${i}`, address: `192.168.0.${10 + i}` })),
};
const network = resolveNetwork(spec);

function inSync(t: HostTarget, a: ArtifactSet): HostReading {
  return {
    live: liveAsDesired(t.state),
    unit: { activeState: 'active', unitFileState: 'enabled', loadState: 'loaded' },
    unitFile: t.unit,
    config: t.config,
    hashes: Object.fromEntries([a.agent, ...a.extras].map((x) => [x.remotePath, x.sha256])),
    runtimeTarget: '/usr/bin/node',
    hostNode: { path: '/usr/bin/node', linked: true },
    // The running agent says it is converged (otherwise apply waits for it).
    status: serializeAgentStatus({
      schema: AGENT_STATUS_SCHEMA,
      state: 'converged',
      configHash: t.configHash,
      pid: 812,
      version: '0.1.0',
      build: '0123456789abcdef',
      network: t.state.network,
      node: t.node,
      datapath: 'ebpf',
      passedOver: {},
      peers: [],
      repairs: 0,
      remaining: [],
    }),
  };
}

/** A host's answer to host-lock.ts's scripts: the lock is free, so it is taken (and later given back). */
function lockReply(cmd: string): { code: number; stdout: string; stderr: string } | undefined {
  const request = /'(\{"id":[^']*,)'/.exec(cmd);
  if (request) return { code: 0, stdout: `acquired\n${request[1]}"since":1,"expires":901}\n`, stderr: '' };
  return cmd.includes('flock') ? { code: 0, stdout: '', stderr: '' } : undefined;
}

/** A session whose hosts are all read in sync except `unreadable`, over a pool that counts connections at once. */
function fakeSession(parallel: number, opts: { unreadable?: string; refuse?: string } = {}) {
  let open = 0;
  let most = 0;
  const execs: string[] = [];
  const connect = async (t: SshTarget): Promise<SshConnection> => {
    open += 1;
    most = Math.max(most, open);
    await new Promise((r) => setTimeout(r, 15));
    open -= 1;
    if (t.label === opts.refuse) throw new SshError('refused', `${t.label} (${t.host}:22)`, 'connection refused');
    return {
      closed: false,
      exec: async (cmd: string) => {
        execs.push(`${t.label}: ${cmd.split('\n')[0]}`);
        return lockReply(cmd) ?? { code: 0, stdout: '', stderr: '' };
      },
      close: async () => undefined,
    } as unknown as SshConnection;
  };
  const pool = new SshPool({ maxParallel: parallel, connect });
  const targets = hostTargets(spec, network);
  const snapshot: NetworkSnapshot = {
    network,
    hosts: network.nodes.map((node, i) => ({
      node,
      target: targets[i]!,
      read:
        node.name === opts.unreadable
          ? { node: node.name, ok: false, error: { kind: 'timeout', message: `${node.name}: timed out` } }
          : { node: node.name, ok: true, reading: inSync(targets[i]!, artifacts) },
    })),
  };
  const sshTargets = new Map(network.nodes.map((n) => [n.name, sshTargetOf(n)]));
  const session = {
    manifest: buildManifest(spec),
    pool,
    sshTarget: (n: { name: string }) => sshTargets.get(n.name)!,
    readNetwork: async () => snapshot,
  } as unknown as EngineSession;
  return { session, most: () => most, execs };
}

describe('applyNetwork', () => {
  it('applies at most --parallel hosts at once and reports each host in order', async () => {
    const fake = fakeSession(2, { unreadable: 'n3' });
    const progress: ApplyProgress[] = [];
    const apply = await applyNetwork(fake.session, network.nodes, artifacts, { onProgress: (p) => progress.push(p) });
    expect(fake.most()).toBe(2);
    expect(apply.hosts.map((h) => [h.node, h.ok, h.changed])).toEqual([
      ['n0', true, false],
      ['n1', true, false],
      ['n2', true, false],
      ['n3', false, false],
      ['n4', true, false],
      ['n5', true, false],
    ]);
    expect(apply.ok).toBe(false);
    expect(apply.hosts[3]).toMatchObject({ error: { kind: 'timeout' } });
    // The unreadable host is reported first; every other host starts before it ends.
    expect(progress[0]).toMatchObject({ event: 'applied', result: { node: 'n3' } });
    expect(progress.filter((p) => p.event === 'applying').map((p) => p.event === 'applying' && p.node)).toEqual([
      'n0',
      'n1',
      'n2',
      'n4',
      'n5',
    ]);
  });

  it("gives a host whose runtime cannot be chosen the kind 'runtime-unavailable'", async () => {
    const strict = { ...spec, agentRuntime: 'host' as const };
    const fake = fakeSession(4);
    const targets = hostTargets(strict, resolveNetwork(strict));
    const snapshot = await fake.session.readNetwork(network.nodes);
    const noNode = {
      ...snapshot,
      hosts: snapshot.hosts.map((h, i) => ({
        ...h,
        target: targets[i]!,
        read: {
          node: h.node.name,
          ok: true as const,
          reading: { ...inSync(targets[i]!, artifacts), hostNode: undefined, runtimeTarget: undefined },
        },
      })),
    };
    (fake.session as unknown as { readNetwork: () => Promise<NetworkSnapshot> }).readNetwork = async () => noNode;
    const apply = await applyNetwork(fake.session, network.nodes, artifacts);
    expect(apply.hosts.every((h) => !h.ok && h.error.kind === 'runtime-unavailable')).toBe(true);
  });
});

describe('destroyNetwork', () => {
  it('destroys at most --parallel hosts at once; a refused host fails alone with its SSH kind', async () => {
    const fake = fakeSession(3, { refuse: 'n1' });
    const destroy = await destroyNetwork(fake.session, network.nodes);
    expect(fake.most()).toBe(3);
    expect(destroy.hosts.map((h) => [h.node, h.outcome])).toEqual([
      ['n0', 'destroyed'],
      ['n1', 'failed'],
      ['n2', 'destroyed'],
      ['n3', 'destroyed'],
      ['n4', 'destroyed'],
      ['n5', 'destroyed'],
    ]);
    expect(destroy.hosts[1]).toMatchObject({ error: { kind: 'refused', message: 'n1 (192.168.0.11:22): connection refused' } });
    expect(destroy.ok).toBe(false);
  });

  it('skips a host holding another revision (the cdktf replacement guard)', async () => {
    const fake = fakeSession(2);
    const conn = {
      closed: false,
      exec: async (cmd: string) => lockReply(cmd) ?? { code: 0, stdout: cmd.startsWith('cat ') ? 'r2\n' : '', stderr: '' },
      close: async () => undefined,
    } as unknown as SshConnection;
    const pool = new SshPool({ maxParallel: 2, connect: async () => conn });
    const destroy = await destroyNetwork(
      { ...fake.session, pool, manifest: fake.session.manifest, sshTarget: fake.session.sshTarget } as unknown as EngineSession,
      network.nodes.slice(0, 1),
      { ifRevision: 'r1' },
    );
    expect(destroy.hosts).toEqual([{ node: 'n0', outcome: 'skipped', heldRevision: 'r2', wantedRevision: 'r1' }]);
    expect(fake.execs).toEqual([]);
  });
});
