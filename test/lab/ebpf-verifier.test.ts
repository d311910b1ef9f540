// Loads podnet's tc IPIP programs into the real kernel (the verifier is the judge), in a network
// namespace and a private bpffs of this test's own: attach, adopt, replace-free re-attach,
// detach, nothing left behind. Needs root; skipped with the reason otherwise.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { LOADER, OBJECT, describeRoot, ensureNativeBuilt } from './ebpf-support';

const NS = `pnbpft-v${process.pid}`;
const FS = `/tmp/pnbpft-fs-${process.pid}`;
const PIN = `${FS}/podnet`;

const sh = (argv: string[], input?: string): string =>
  execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
const inNs = (argv: string[], input?: string): string => sh(['ip', 'netns', 'exec', NS, ...argv], input);
const bpf = (args: string[], input?: string): string => inNs([LOADER, '--pin-dir', PIN, ...args], input);
const tcFilters = (dev: string, dir: 'ingress' | 'egress'): string => sh(['tc', '-n', NS, 'filter', 'show', 'dev', dev, dir]);

describeRoot('eBPF datapath in the real kernel', () => {
  beforeAll(() => {
    ensureNativeBuilt();
    sh(['ip', 'netns', 'add', NS]);
    // Devices are made inside the namespace: nothing is added to the machine's own.
    sh(['ip', '-n', NS, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0']);
    sh(['ip', '-n', NS, 'addr', 'add', '192.168.0.81/24', 'dev', 'eth0']);
    sh(['ip', '-n', NS, 'link', 'set', 'eth0', 'up']);
    sh(['ip', '-n', NS, 'link', 'set', 'peer0', 'up']);
    sh(['ip', '-n', NS, 'tuntap', 'add', 'dev', 'flannel.ipip', 'mode', 'tun']);
    sh(['ip', '-n', NS, 'link', 'set', 'flannel.ipip', 'mtu', '1480', 'up']);
    mkdirSync(FS, { recursive: true });
    sh(['mount', '-t', 'bpf', 'bpf', FS]);
  }, 120_000);

  afterAll(() => {
    try {
      sh(['umount', FS]);
    } catch {
      /* not mounted */
    }
    try {
      rmdirSync(FS);
    } catch {
      /* gone */
    }
    try {
      sh(['ip', 'netns', 'del', NS]);
    } catch {
      /* gone */
    }
  });

  it('probe says BPF can be loaded here', () => {
    expect(bpf(['probe', '--object', OBJECT]).trim()).toBe('ok');
  });

  it('attaches both programs (the verifier accepts them) and pins maps and programs', () => {
    const r = JSON.parse(
      bpf(['attach', '--json', '--object', OBJECT, '--tunnel-dev', 'flannel.ipip', '--underlay-dev', 'eth0', '--local', '192.168.0.81']),
    );
    expect(r).toEqual({ egress: 'attached', ingress: 'attached' });
    expect(tcFilters('eth0', 'ingress')).toMatch(/pn_underlay_ing.*direct-action/);
    expect(tcFilters('flannel.ipip', 'egress')).toMatch(/pn_tun_egress.*direct-action/);
    expect(readdirSync(PIN).sort()).toEqual([
      'pn_config',
      'pn_counters',
      'pn_drops',
      'pn_drops_ext',
      'pn_peer_addrs',
      'pn_peers',
      'pn_pmtu',
      'pn_pods',
      'pn_tun_egress',
      'pn_underlay_ingress',
    ]);
    const st = JSON.parse(bpf(['status']));
    expect(st).toMatchObject({
      local: '192.168.0.81',
      pinnedMaps: 8,
      egress: { attached: true, dev: 'flannel.ipip' },
      ingress: { attached: true, dev: 'eth0' },
    });
  });

  it('adopts on re-attach: same programs stay, map contents survive', () => {
    const before = JSON.parse(bpf(['status']));
    bpf(['peer-set', '10.244.2.0/24', '192.168.0.82']);
    expect(
      JSON.parse(
        bpf(['attach', '--json', '--object', OBJECT, '--tunnel-dev', 'flannel.ipip', '--underlay-dev', 'eth0', '--local', '192.168.0.81']),
      ),
    ).toEqual({ egress: 'adopted', ingress: 'adopted' });
    const after = JSON.parse(bpf(['status']));
    expect(after.egress.progId).toBe(before.egress.progId);
    expect(after.ingress.progId).toBe(before.ingress.progId);
    expect(JSON.parse(bpf(['peers', '--json']))).toEqual([{ cidr: '10.244.2.0/24', address: '192.168.0.82', index: 0 }]);
  });

  it('keeps peer maps equal to the desired set, in place', () => {
    expect(JSON.parse(bpf(['peers-sync'], '10.244.2.0/24 192.168.0.82\n10.244.0.0/24 192.168.0.80\n'))).toEqual({
      added: 1,
      changed: 0,
      removed: 0,
    });
    expect(JSON.parse(bpf(['peers-sync'], '10.244.0.0/24 192.168.0.80\n'))).toEqual({ added: 0, changed: 0, removed: 1 });
    const peers = JSON.parse(bpf(['peers', '--json']));
    expect(peers).toEqual([{ cidr: '10.244.0.0/24', address: '192.168.0.80', index: 1 }]);
    const c = JSON.parse(bpf(['counters', '--json']));
    expect(c.peers.map((p: { address: string }) => p.address)).toEqual(['192.168.0.80']);
    expect(c.dropped).toBe(0);
    expect(() => bpf(['peers-sync'], '10.244.0.1/24 192.168.0.80\n')).toThrow();
    expect(JSON.parse(bpf(['pods-sync'], '10.244.1.2 7 aa:bb:cc:dd:ee:01 aa:bb:cc:dd:ee:ff\n'))).toEqual({ set: 1, removed: 0 });
    expect(JSON.parse(bpf(['pods', '--json']))).toEqual([
      { ip: '10.244.1.2', ifindex: 7, podMac: 'aa:bb:cc:dd:ee:01', hostMac: 'aa:bb:cc:dd:ee:ff' },
    ]);
  });

  it('leaves a foreign filter alone and detaches only its own', () => {
    // Someone else's classifier on the same device, another priority: it must survive detach.
    sh([
      'tc',
      '-n',
      NS,
      'filter',
      'add',
      'dev',
      'eth0',
      'ingress',
      'prio',
      '7',
      'bpf',
      'bytecode',
      '1,6 0 0 4294967295,',
      'classid',
      '1:1',
    ]);
    expect(JSON.parse(bpf(['detach', '--json', '--tunnel-dev', 'flannel.ipip', '--underlay-dev', 'eth0']))).toEqual({
      egress: 'detached',
      ingress: 'detached',
    });
    expect(tcFilters('eth0', 'ingress')).not.toMatch(/pn_/);
    expect(tcFilters('eth0', 'ingress')).toMatch(/bytecode/);
    expect(tcFilters('flannel.ipip', 'egress')).not.toMatch(/pn_/);
    expect(existsSync(PIN)).toBe(false);
  });
});
