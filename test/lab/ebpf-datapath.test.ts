// The eBPF datapath end to end on real lab hosts (systemd-nspawn, kernel without ipip):
// EbpfDatapath drives podnet-bpf inside node1 and node2 (through labExec), peer routes are added
// by hand as the agent's reconcile would, pods are wired by the CNI bridge plugin. Proves the
// wire format (tcpdump on the switch), a 100 MB transfer intact, adoption without loss, in-place
// peer changes under load, and that protocol 4 from a non-peer is dropped and counted.
import { copyFileSync, mkdirSync, existsSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { labExec, podAdd, podExec, wsExec } from '../../src/lab';
import { run } from '../../src/lab/exec';
import { switchPort } from '../../src/lab/lab-config';
import { EbpfDatapath } from '../../agent/datapaths/ebpf/index';
import { CLIENT, IPIP_CE_SENDER, IPIP_SENDER, SERVER } from './traffic-probes';
import type { Runner } from '../../agent/host/runner';
import type { DatapathHost, DatapathPeer } from '../../agent/datapaths/datapath';
import { describeLab, testLabName, withLab } from './lab-support';
import { LOADER, OBJECT, ensureNativeBuilt } from './ebpf-support';

const LAB = testLabName('ebpft');
const DIR = '/usr/local/lib/podnet';
const NODE = `${DIR}/node`;

const NODES = [
  { name: 'node1', index: 1, address: '192.168.0.81', podCidr: '10.244.1.0/24' },
  { name: 'node2', index: 2, address: '192.168.0.82', podCidr: '10.244.2.0/24' },
] as const;
type NodeName = (typeof NODES)[number]['name'];

const hostOf = (n: (typeof NODES)[number]): DatapathHost => ({
  tunnelDevice: 'flannel.ipip',
  localAddress: n.address,
  underlayDevice: 'eth0',
  mtu: 1480,
  tunnelAddress: `${n.podCidr.split('/')[0]}/32`,
  podCidr: n.podCidr,
  clusterCidr: '10.244.0.0/16',
});
const PEERS: DatapathPeer[] = NODES.map((n) => ({ node: n.name, address: n.address, podCidr: n.podCidr }));

/** A Runner that runs inside a lab host: EbpfDatapath drives the host as the agent would locally. */
const hostRunner =
  (host: NodeName): Runner =>
  async (file, args, o) =>
    labExec(LAB, host, [file, ...args], { input: o?.input, timeoutMs: o?.timeoutMs });
const datapath = (host: NodeName) =>
  new EbpfDatapath(hostOf(NODES.find((n) => n.name === host)!), {
    run: hostRunner(host),
    loaderPath: `${DIR}/podnet-bpf`,
    podSyncIntervalMs: 0,
  });

async function must(host: NodeName, argv: string[], input?: string): Promise<string> {
  const r = await labExec(LAB, host, argv, { input, timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`${host}: ${argv.join(' ')} -> ${r.code}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

describeLab('eBPF datapath on lab hosts', () => {
  const lab = withLab(LAB, { hosts: 3 });
  const pod: Record<NodeName, string> = { node1: '', node2: '' };
  const dps: Partial<Record<NodeName, EbpfDatapath>> = {};

  beforeAll(async () => {
    ensureNativeBuilt();
    for (const n of NODES) {
      const h = lab.info().hosts.find((x) => x.name === n.name)!;
      if (!h.bpf) throw new Error(`${n.name} cannot load BPF`);
      const dir = join(h.rootDir, DIR.slice(1));
      mkdirSync(dir, { recursive: true });
      copyFileSync(LOADER, join(dir, 'podnet-bpf'));
      copyFileSync(OBJECT, join(dir, 'podnet-ipip.bpf.o'));
      if (!existsSync(join(dir, 'node'))) copyFileSync(process.execPath, join(dir, 'node'));
      chmodSync(join(dir, 'podnet-bpf'), 0o755);
      chmodSync(join(dir, 'node'), 0o755);
      const sub = n.podCidr.replace('.0/24', '.1/24');
      await must(
        n.name,
        ['sh', '-c', 'mkdir -p /run/flannel && cat > /run/flannel/subnet.env'],
        `FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=${sub}\nFLANNEL_MTU=1480\nFLANNEL_IPMASQ=true\n`,
      );
      pod[n.name] = (await podAdd(LAB, n.name, 'pa')).ip;
      await must(n.name, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      const dp = datapath(n.name);
      await dp.ensure();
      await dp.setPeers(PEERS);
      dps[n.name] = dp;
      // What the agent's common reconcile adds: flannel's route shape.
      for (const p of NODES.filter((x) => x !== n))
        await must(n.name, ['ip', 'route', 'replace', p.podCidr, 'via', p.address, 'dev', 'flannel.ipip', 'onlink']);
    }
  }, 15 * 60_000);

  afterAll(async () => {
    for (const n of NODES) await dps[n.name]?.close();
  });

  it('routes read like flannel and local pods are in the fast-path table', async () => {
    const routes = await must('node1', ['ip', 'route', 'show', '10.244.2.0/24']);
    // A TUN nobody reads has no carrier, so iproute2 adds "linkdown"; `route -n` (net-tools) shows
    // the flannel line `10.244.2.0 192.168.0.82 255.255.255.0 UG flannel.ipip` and the kernel
    // still uses the route (ignore_routes_with_linkdown is 0 by default).
    expect(routes.trim()).toMatch(/^10\.244\.2\.0\/24 via 192\.168\.0\.82 dev flannel\.ipip onlink( linkdown)?$/);
    const link = JSON.parse(await must('node1', ['ip', '-json', '-d', 'link', 'show', 'flannel.ipip']))[0];
    expect(link.linkinfo.info_kind).toBe('tun');
    expect(link.mtu).toBe(1480);
    const pods = JSON.parse(await must('node2', [`${DIR}/podnet-bpf`, 'pods', '--json']));
    expect(pods.map((p: { ip: string }) => p.ip)).toEqual([pod.node2]);
  });

  it('carries a pod ping in kernel ipip format (tcpdump on the switch: outer TTL and DF = inner)', async () => {
    const port = switchPort(1);
    const sw = lab.info().switchNetns;
    const plain = run(
      ['ip', 'netns', 'exec', sw, 'timeout', '10', 'tcpdump', '-nl', '-i', port, '-c', '1', 'ip proto 4 and src host 192.168.0.81'],
      { timeoutMs: 15_000 },
    );
    const verbose = run(
      ['ip', 'netns', 'exec', sw, 'timeout', '10', 'tcpdump', '-nlv', '-i', port, '-c', '1', 'ip proto 4 and src host 192.168.0.81'],
      { timeoutMs: 15_000 },
    );
    await new Promise((r) => setTimeout(r, 1000));
    const ping = await podExec(LAB, 'node1', 'pa', ['ping', '-c', '3', '-i', '0.3', '-W', '2', pod.node2]);
    expect(ping.stdout).toMatch(/3 received/);
    const p = await plain;
    expect(p.stdout).toContain(`IP 192.168.0.81 > 192.168.0.82: IP ${pod.node1} > ${pod.node2}: ICMP echo request`);
    const v = (await verbose).stdout;
    const m =
      /IP \(tos (\S+), ttl (\d+), id \d+, offset 0, flags \[(\w+)\], proto IPIP \(4\).*\n\s+192\.168\.0\.81 > 192\.168\.0\.82: IP \(tos (\S+), ttl (\d+), id \d+, offset 0, flags \[(\w+)\], proto ICMP/.exec(
        v,
      );
    expect(m).not.toBeNull();
    const [, , oTtl, oFlags, , iTtl, iFlags] = m!;
    expect(oTtl).toBe(iTtl);
    expect(oFlags).toBe(iFlags);
    expect(iFlags).toBe('DF'); // ping sets DF; the outer copies it (nopmtudisc)
  }, 60_000);

  it('moves 100 MB between pods intact while a third peer is added in place', async () => {
    const server = podExec(LAB, 'node2', 'pa', [NODE, '-e', SERVER], { timeoutMs: 90_000 });
    await new Promise((r) => setTimeout(r, 1500));
    const client = podExec(LAB, 'node1', 'pa', [NODE, '-e', CLIENT, pod.node2, '100'], { timeoutMs: 90_000 });
    await new Promise((r) => setTimeout(r, 700));
    // A third peer while the transfer runs: map update in place, traffic to node2 unaffected.
    await dps.node1!.setPeers([...PEERS, { node: 'node9', address: '192.168.0.89', podCidr: '10.244.9.0/24' }]);
    const [s, c] = await Promise.all([server, client]);
    expect(c.code).toBe(0);
    expect(s.code).toBe(0);
    const sent = JSON.parse(c.stdout.trim());
    const got = JSON.parse(s.stdout.trim());
    expect(sent.bytes).toBe(100 * 1048576);
    expect(got).toEqual(sent);
    const peers = JSON.parse(await must('node1', [`${DIR}/podnet-bpf`, 'peers', '--json']));
    expect(peers.map((p: { cidr: string }) => p.cidr).sort()).toEqual(['10.244.2.0/24', '10.244.9.0/24']);
    const counters = await dps.node1!.counters();
    expect(counters.peers.find((p) => p.node === 'node2')!.txBytes).toBeGreaterThan(100 * 1048576);
    await dps.node1!.setPeers(PEERS);
  }, 120_000);

  it('a restarted agent adopts the pinned programs without losing a packet', async () => {
    const ping = podExec(LAB, 'node1', 'pa', ['ping', '-c', '60', '-i', '0.05', '-W', '1', pod.node2], { timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 600));
    const before = await dps.node1!.status();
    const fresh = datapath('node1'); // a new agent process: no memory, only what is pinned
    await fresh.ensure();
    await fresh.setPeers(PEERS);
    expect(fresh.lastAttach).toEqual({ egress: 'adopted', ingress: 'adopted' });
    const after = await fresh.status();
    expect(after.egress.progId).toBe(before.egress.progId);
    expect(after.ingress.progId).toBe(before.ingress.progId);
    await fresh.close();
    const r = await ping;
    expect(r.stdout).toMatch(/60 packets transmitted, 60 received, 0% packet loss/);
  }, 60_000);

  /** Sends one hand-made packet from the workstation with python3; false (and says so) without python3. */
  async function sendFromWorkstation(check: string, script: string, args: string[]): Promise<boolean> {
    if ((await wsExec(LAB, ['sh', '-c', 'command -v python3'])).code !== 0) {
      process.stderr.write(`[ebpf e2e] no python3 on this machine: ${check} check skipped\n`);
      return false;
    }
    const r = await wsExec(LAB, ['python3', '-c', script, ...args]);
    expect(r.code).toBe(0);
    return true;
  }

  it('drops and counts protocol 4 from a non-peer (the workstation)', async () => {
    const before = await dps.node1!.loaderCounters();
    if (!(await sendFromWorkstation('non-peer IPIP', IPIP_SENDER, ['192.168.0.81', pod.node1]))) return;
    await new Promise((res) => setTimeout(res, 500));
    const after = await dps.node1!.loaderCounters();
    expect(after.drops.unknownSource).toBe(before.drops.unknownSource + 1);
    expect((await dps.node1!.counters()).dropped).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it('drops outer CE on a not-ECT inner packet from a peer and counts it as ecn, like userspace (RFC 6040)', async () => {
    const before = await dps.node1!.counters();
    if (!(await sendFromWorkstation('ECN drop', IPIP_CE_SENDER, ['192.168.0.81', '192.168.0.82', pod.node1]))) return;
    await new Promise((res) => setTimeout(res, 500));
    const after = await dps.node1!.counters();
    expect(after.drops?.ecn).toBe((before.drops?.ecn ?? 0) + 1);
    expect(after.drops?.malformed).toBe(before.drops?.malformed);
    expect(after.dropped).toBeGreaterThanOrEqual(before.dropped + 1);
  }, 30_000);

  it('teardown removes only what podnet made', async () => {
    for (const n of NODES) {
      await dps[n.name]!.teardown();
      const tc = await must(n.name, ['tc', 'filter', 'show', 'dev', 'eth0', 'ingress']);
      expect(tc).not.toMatch(/pn_/);
      expect((await labExec(LAB, n.name, ['ip', 'link', 'show', 'flannel.ipip'])).code).not.toBe(0);
      expect((await labExec(LAB, n.name, ['test', '-e', '/sys/fs/bpf/podnet'])).code).not.toBe(0);
      // The underlay still works (plain IP between hosts).
      expect((await labExec(LAB, n.name, ['ping', '-c', '1', '-W', '2', n.name === 'node1' ? '192.168.0.82' : '192.168.0.81'])).code).toBe(
        0,
      );
    }
  }, 60_000);
});
