// The reconciler's honesty and restraint, with the host faked: a pass reads a live state and
// records what it would run. What the agent publishes is `degradedReasons` of the outcome.
import type { LiveHostState } from '../../../../src/host/live-state';
import { desiredHostState, resolveNetwork } from '../../../../src/model';
import type { Datapath } from '../../../../agent/datapaths/datapath';
import { degradedReasons } from '../../../../agent/reconcile/degraded';
import { Reconciler, type HostEffects } from '../../../../agent/reconcile/reconciler';
import { RepairBackoff } from '../../../../agent/reconcile/backoff';
import { Ownership } from '../../../../agent/host/ownership';
import { undoSteps } from '../../../../agent/teardown';
import { referenceSpec } from '../../reference-network';
import { liveInSync } from '../../live-fixtures';

const state = desiredHostState(resolveNetwork(referenceSpec), 'node1');
const inSync = liveInSync(state);
const withoutRoute = (live: LiveHostState, dst: string): LiveHostState => ({
  ...live,
  routes: live.routes.filter((r) => r.destination !== dst),
});

interface Fake {
  live: LiveHostState;
  batches: string[][];
  /** Runs after each ip batch (the batch "fixes" what it can: here, everything). */
  afterBatch: () => void;
  /** Whether the underlay has a clsact qdisc. */
  clsact: boolean;
}

function fakeEffects(f: Fake): HostEffects {
  return {
    readLive: async () => f.live,
    deleteLink: async () => undefined,
    enableIpForward: async () => undefined,
    ipBatch: async (lines) => {
      f.batches.push([...lines]);
      f.afterBatch();
      return { code: 0, stdout: '', stderr: '' };
    },
    writeSubnetEnv: async () => undefined,
    writeCniConfig: async () => undefined,
    replaceNft: async () => undefined,
    enableInterfaceForwarding: async () => undefined,
    run: async () => ({ code: 0, stdout: '', stderr: '' }),
    hasClsact: async () => f.clsact,
  };
}

function fakeDatapath(opts: { ensure?: () => Promise<void>; health?: () => Promise<string[]> } = {}): Datapath {
  return {
    kind: 'ebpf',
    ensure: opts.ensure ?? (async () => undefined),
    setPeers: async () => undefined,
    counters: async () => ({ peers: [], dropped: 0 }),
    close: async () => undefined,
    teardown: async () => undefined,
    ...(opts.health ? { health: opts.health } : {}),
  };
}

function setup(datapath: Datapath, live: LiveHostState = inSync, ownership = Ownership.inMemory()) {
  const fake: Fake = {
    live,
    batches: [],
    afterBatch: () => {
      fake.live = inSync;
    },
    clsact: false,
  };
  let now = 1_000_000;
  const logs: string[] = [];
  const reconciler = new Reconciler(state, datapath, (l) => logs.push(l), { effects: fakeEffects(fake), now: () => now, ownership });
  return {
    fake,
    logs,
    reconciler,
    ownership,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe('Reconciler: converged means traffic can flow', () => {
  it('a failed datapath set-up keeps every later light pass degraded, with the reason, until set-up succeeds', async () => {
    let attachWorks = false;
    const { reconciler, advance } = setup(
      fakeDatapath({
        ensure: async () => {
          if (!attachWorks) throw new Error('podnet-bpf attach: eth9: no such device');
        },
      }),
    );
    const start = await reconciler.reconcile('full', 'start');
    expect(degradedReasons(start, reconciler.delayed())).toEqual(['datapath ebpf is not set up: podnet-bpf attach: eth9: no such device']);
    // A netlink event: a light pass. Nothing differs in routes, devices or files, yet the
    // datapath still is not attached: this must not read as converged.
    for (let i = 0; i < 5; i++) {
      advance(100);
      const light = await reconciler.reconcile('light', 'ip');
      expect(degradedReasons(light, reconciler.delayed())).toEqual([
        'datapath ebpf is not set up: podnet-bpf attach: eth9: no such device',
      ]);
    }
    attachWorks = true;
    advance(60_000);
    const healed = await reconciler.reconcile('light', 'ip');
    expect(degradedReasons(healed, reconciler.delayed())).toEqual([]);
  });

  it('retries a failing set-up on events only as often as its backoff allows', async () => {
    let attempts = 0;
    const { reconciler, advance } = setup(
      fakeDatapath({
        ensure: async () => {
          attempts++;
          throw new Error('attach failed');
        },
      }),
    );
    await reconciler.reconcile('full', 'start');
    for (let i = 0; i < 20; i++) {
      advance(50);
      await reconciler.reconcile('light', 'ip');
    }
    // 1 s of events at 20/s: the first three attempts, then one per delay (1 s).
    expect(attempts).toBeLessThanOrEqual(4);
    expect(reconciler.delayed().map((d) => d.key)).toEqual(['datapath']);
  });

  it("reports what the datapath's health check finds (programs detached), though nothing else differs", async () => {
    const { reconciler } = setup(fakeDatapath({ health: async () => ['no program attached to eth0 ingress'] }));
    const outcome = await reconciler.reconcile('full', 'start');
    expect(degradedReasons(outcome, [])).toEqual(['datapath ebpf: no program attached to eth0 ingress']);
  });

  it('reports an underlay without the node address as degraded, and never tries to fix it', async () => {
    const live = { ...inSync, addresses: inSync.addresses.filter((a) => a.device !== 'eth0') };
    const { reconciler, fake } = setup(fakeDatapath(), live);
    const outcome = await reconciler.reconcile('full', 'start');
    expect(degradedReasons(outcome, [])).toEqual(['underlay-address eth0 expected=192.168.0.81 actual=none']);
    expect(fake.batches).toEqual([]);
  });
});

describe('Reconciler: every repair counted, repeated ones backed off', () => {
  it('counts repairs of event-driven passes, also when a second event arrives during the pass', async () => {
    const { reconciler, fake } = setup(fakeDatapath());
    await reconciler.reconcile('full', 'start');
    expect(reconciler.repairs).toBe(0);
    fake.live = withoutRoute(inSync, '10.244.2.0/24');
    const first = reconciler.reconcile('light', 'ip');
    const second = reconciler.reconcile('light', 'ip'); // arrives while the first pass runs: queued
    const [a, b] = await Promise.all([first, second]);
    expect(a.repaired.map((d) => d.kind)).toEqual(['route-missing']);
    expect(b).toBe(a);
    expect(reconciler.repairs).toBe(1);
  });

  it('something that keeps deleting a route: repairs slow down, one log line names it, and the status lists it', async () => {
    const { reconciler, fake, logs, advance } = setup(fakeDatapath());
    await reconciler.reconcile('full', 'start');
    const fight = async () => {
      fake.live = withoutRoute(inSync, '10.244.2.0/24'); // the other tool deletes it again
      advance(40);
      return reconciler.reconcile('light', 'ip');
    };
    for (let i = 0; i < 3; i++) await fight();
    expect(fake.batches).toHaveLength(3);
    const held = await fight(); // within the 1 s delay: not repaired
    expect(fake.batches).toHaveLength(3);
    expect(degradedReasons(held, reconciler.delayed())).toEqual([
      'route-missing 10.244.2.0/24 expected=10.244.2.0/24 via 192.168.0.82 dev flannel.ipip onlink (repair delayed: something keeps undoing it)',
    ]);
    expect(reconciler.delayed()).toEqual([
      { key: 'route-missing 10.244.2.0/24', repairs: 3, windowS: 60, retryAt: expect.any(Number), sources: ['ip'] },
    ]);
    for (let i = 0; i < 20; i++) await fight();
    const undone = logs.filter((l) => l.startsWith('something keeps undoing'));
    expect(undone[0]).toBe(
      'something keeps undoing route-missing 10.244.2.0/24: repaired 3 times in 0.1 s (woken by ip events); next repair in 1 s',
    );
    expect(undone).toHaveLength(1);
    // The difference itself is logged when it appears, not on every event.
    expect(logs.filter((l) => l.startsWith('drift route-missing')).length).toBeLessThanOrEqual(fake.batches.length);
    advance(2_000);
    await reconciler.reconcile('light', 'backoff');
    expect(fake.batches.length).toBeGreaterThan(3);
    expect(reconciler.nextRetry()).toBeGreaterThan(0);
  });

  it('logs a difference it cannot fix once, not on every event', async () => {
    const foreign = {
      ...inSync,
      routes: inSync.routes.map((r) => (r.destination === '10.244.2.0/24' ? { ...r, protocol: '4', gateway: '192.168.0.99' } : r)),
    };
    const { reconciler, logs } = setup(fakeDatapath(), foreign);
    for (let i = 0; i < 5; i++) await reconciler.reconcile('light', 'ip');
    expect(logs.filter((l) => l.includes('route-foreign'))).toHaveLength(1);
  });
});

describe('RepairBackoff', () => {
  it('delays after three repairs in a minute, doubling up to 30 s, and forgets once the object held', () => {
    const b = new RepairBackoff();
    const t0 = 0;
    expect(b.record('k', t0, 'ip')).toBeUndefined();
    expect(b.record('k', t0 + 10, 'ip')).toBeUndefined();
    expect(b.record('k', t0 + 20, 'nft')).toMatch(
      /^something keeps undoing k: repaired 3 times in 0.0 s \(woken by ip, nft events\); next repair in 1 s$/,
    );
    expect(b.allowed('k', t0 + 500)).toBe(false);
    expect(b.allowed('k', t0 + 1_020)).toBe(true);
    expect(b.record('k', t0 + 1_020, 'ip')).toBeUndefined(); // logged once per 30 s at most
    expect(b.delayed(t0 + 1_020)[0]).toMatchObject({ retryAt: t0 + 3_020 });
    let t = t0 + 1_020;
    for (let i = 0; i < 10; i++) b.record('k', (t += 100), 'ip');
    expect(b.delayed(t)[0]).toMatchObject({ key: 'k', retryAt: t + 30_000 });
    expect(b.held('k', t + 1_000)).toBeUndefined(); // repairs still in the window
    expect(b.record('k', t0 + 31_000, 'ip')).toMatch(/^something keeps undoing k: repaired 15 times in 31.0 s/);
    t = t0 + 31_000;
    expect(b.held('k', t + 61_000)).toBe('k held for 60 s: repairs no longer delayed');
    expect(b.allowed('k', t + 61_000)).toBe(true);
    expect(b.delayed(t + 61_000)).toEqual([]);
  });
});

describe('ownership record: teardown undoes exactly what podnet did', () => {
  const bare: LiveHostState = {
    ...inSync,
    links: inSync.links.filter((l) => l.name !== 'cni0'),
    addresses: inSync.addresses.filter((a) => a.device !== 'cni0'),
    ipForward: false,
  };

  it('a bridge podnet created, ip_forward it turned on and a clsact its datapath added are undone', async () => {
    const { reconciler, ownership, fake } = setup(
      fakeDatapath({
        ensure: async () => {
          fake.clsact = true;
        },
      }),
      bare,
    );
    await reconciler.reconcile('full', 'start');
    expect(ownership.record).toMatchObject({
      datapath: 'ebpf',
      createdLinks: ['cni0'],
      adoptedLinks: [],
      foundClsact: [],
      sysctls: { 'net.ipv4.ip_forward': '0' },
    });
    expect(undoSteps(ownership.record, state)).toEqual({ ipBatch: ['link del cni0'], sysctls: ['net.ipv4.ip_forward=0'] });
  });

  it('a cni0 that was there first (pods on it) is kept, only the address podnet added goes; a clsact found stays', async () => {
    const foundBridge = { ...inSync, addresses: inSync.addresses.filter((a) => a.device !== 'cni0') };
    const { reconciler, ownership, fake } = setup(fakeDatapath(), foundBridge);
    fake.clsact = true;
    await reconciler.reconcile('full', 'start');
    expect(ownership.record).toMatchObject({
      createdLinks: [],
      adoptedLinks: [{ name: 'cni0', addedAddresses: ['10.244.1.1/24'] }],
      foundClsact: ['eth0'],
      sysctls: {},
    });
    expect(undoSteps(ownership.record, state)).toEqual({ ipBatch: ['addr del 10.244.1.1/24 dev cni0'], sysctls: [] });
  });

  it('a bridge found with its address already is left entirely alone; without a record, teardown goes by names', async () => {
    const { reconciler, ownership } = setup(fakeDatapath(), inSync);
    await reconciler.reconcile('full', 'start');
    expect(undoSteps(ownership.record, state)).toEqual({ ipBatch: [], sysctls: [] });
    expect(undoSteps(undefined, state)).toEqual({ ipBatch: ['link del cni0'], sysctls: [] });
  });
});

describe('Reconciler: what a repair reveals', () => {
  it('gets a pass of its own at once (a pod veth off the bridge that was just recreated)', async () => {
    const veth = { name: 'veth13e5552a', ifindex: 9, kind: 'veth', mtu: 1480, up: true, peerNetns: true };
    const noBridge: LiveHostState = { ...inSync, links: [...inSync.links.filter((l) => l.name !== 'cni0'), veth] };
    const { reconciler, fake } = setup(fakeDatapath(), inSync);
    await reconciler.reconcile('full', 'start');
    fake.live = noBridge;
    // The first batch makes the bridge; the pod's veth then shows off it; the second puts it back.
    fake.afterBatch = () => {
      fake.live = fake.batches.length === 1 ? { ...inSync, links: [...inSync.links, veth] } : inSync;
    };
    const outcome = await reconciler.reconcile('light', 'ip');
    expect(fake.batches.map((b) => b.find((l) => l.includes('veth13e5552a') || l.includes('link add')))).toEqual([
      expect.stringMatching(/^link add cni0 /),
      'link set veth13e5552a master cni0',
    ]);
    expect(outcome.remaining).toEqual([]);
  });
});

describe('firewalld beside the ebpf datapath', () => {
  it('records the binding before making it, retries while firewalld does not answer yet, and keeps pods untracked', async () => {
    const firewalld = { sources: {}, interfaces: {}, defaultZone: 'public', tunnelProtocolZones: [] as string[] };
    const live: LiveHostState = { ...inSync, firewalld };
    const ran: { argv: string[]; input?: string }[] = [];
    let refusals = 2;
    const effects: HostEffects = {
      ...fakeEffects({ live, batches: [], afterBatch: () => undefined, clsact: false }),
      readLive: async () =>
        ran.some((r) => r.argv.includes('addSource') && refusals < 0)
          ? { ...live, firewalld: { ...firewalld, sources: { '10.244.0.0/16': 'trusted' }, tunnelProtocolZones: ['public'] } }
          : live,
      run: async (argv, input) => {
        ran.push({ argv: [...argv], ...(input !== undefined ? { input } : {}) });
        if (argv.includes('addSource'))
          return refusals-- > 0 ? { code: 1, stdout: '', stderr: 'not running yet' } : { code: 0, stdout: 's "trusted"', stderr: '' };
        if (argv[1] === 'list') return { code: 1, stdout: '', stderr: 'no such table' };
        return { code: 0, stdout: '', stderr: '' };
      },
    };
    const ownership = Ownership.inMemory();
    const reconciler = new Reconciler(state, fakeDatapath(), () => undefined, { effects, ownership });
    const outcome = await reconciler.reconcile('full', 'start');
    expect(outcome.remaining).toEqual([]);
    expect(ownership.record.firewalldSources).toEqual(['10.244.0.0/16']);
    expect(ownership.record.firewalldProtocolZones).toEqual(['public']);
    expect(ran.filter((r) => r.argv.includes('addProtocol')).map((r) => r.argv.slice(-3))).toEqual([['public', '4', '0']]);
    expect(ran.filter((r) => r.argv.includes('addSource'))).toHaveLength(3);
    expect(ran.find((r) => r.argv[0] === 'nft' && r.argv[1] === '-f')?.input).toContain(
      'iifname "cni0" ip daddr 10.244.0.0/16 ip daddr != 10.244.1.0/24 notrack',
    );
  });
});
