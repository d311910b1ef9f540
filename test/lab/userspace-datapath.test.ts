// The userspace datapath end to end, through the real agent: a lab whose node1 and master may not
// load BPF (`noBpfHosts`), the reference network applied with the real CLI (`datapath: auto`), so
// their agents pass over kernel and ebpf and run TUN + raw socket, while node2 runs ebpf.
// Proves: the choice and its reasons in status, pod pings both ways, the same outer header from
// both datapaths on the switch, 100 MB each way intact (byte-exact, sha256) between userspace and
// ebpf and between two userspace nodes (TSO reads cut into segments on one end, segments merged
// into GSO writes on the other: the offload counters must show both), a non-peer's protocol-4
// packet dropped and counted, traffic back within 3 s after `kill -9` of the agent, and clean
// teardown by destroy. Logs iperf3 throughput of userspace vs ebpf for the record.
// master sits behind a router with a 1400-byte path MTU (profile `pmtu1400`): the router's
// "fragmentation needed" must reach the pods as an inner one (mtu 1380), as kernel ipip does, and
// TCP between node1 and master (both userspace) must flow across it. A forged "fragmentation
// needed" from the workstation quoting a made-up inner packet is learned from but not relayed.
// ICMP errors about node1's packets to master cost no packet (no sendError) towards node2.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { referenceApp } from '../../examples/reference-network';
import { labExec, podAdd, podExec, wsExec } from '../../src/lab';
import { run } from '../../src/lab/exec';
import { switchPort } from '../../src/lab/lab-config';
import { describeLab, rootRoutes, testLabName, withLab } from './lab-support';
import { projectRoot, runPodnet } from './engine-support';
import { CLIENT, ICMP_ERROR_SENDER, IPIP_SENDER, iperfReceivedBps, SERVER } from './traffic-probes';

const LAB = testLabName('usdp');
const NODE = '/usr/local/lib/podnet/node';
const AGENT = '/usr/local/lib/podnet/podnet-agent.js';
const UNIT = 'podnet-cluster.service';
jest.setTimeout(120_000);

interface Status {
  state: string;
  pid: number;
  datapath?: string;
  passedOver: Record<string, string>;
  counters?: {
    dropped: number;
    drops?: Record<string, number>;
    offload?: { tunReads: number; txSegments: number; tunWrites: number; rxMerged: number };
    peers: {
      node: string;
      txPackets: number;
      rxPackets: number;
      txBytes: number;
      rxBytes: number;
      pathMtu?: number;
      fragNeededRelayed?: number;
    }[];
  };
}

async function must(host: string, argv: string[]): Promise<string> {
  const r = await labExec(LAB, host, argv, { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`${host}: ${argv.join(' ')} -> ${r.code}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

const status = async (host: string): Promise<Status> =>
  JSON.parse(await must(host, [NODE, AGENT, 'status', '--network', 'cluster', '--json'])) as Status;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` on the agent's status (written after every reconcile; its counters refreshed every 5 s). */
async function waitStatus(host: string, cond: (s: Status) => boolean, ms = 12_000): Promise<Status> {
  const end = Date.now() + ms;
  let s = await status(host);
  while (!cond(s) && Date.now() < end) {
    await sleep(250);
    s = await status(host);
  }
  return s;
}

/** Byte-exact transfer from a pod on `from` to the pod on `to` (sha256 at both ends). */
async function transfer(from: string, to: string, toIp: string, mb: number): Promise<void> {
  const server = podExec(LAB, to, 'pa', [NODE, '-e', SERVER], { timeoutMs: 90_000 });
  await sleep(1200);
  const c = await podExec(LAB, from, 'pa', [NODE, '-e', CLIENT, toIp, String(mb)], { timeoutMs: 90_000 });
  const s = await server;
  expect(c.code).toBe(0);
  expect(s.code).toBe(0);
  const sent = JSON.parse(c.stdout.trim()) as { bytes: number; sha: string };
  expect(sent.bytes).toBe(mb * 1048576);
  expect(JSON.parse(s.stdout.trim())).toEqual(sent);
}

/** True when the workstation has python3 (which crafts the packets below); says so when not. */
async function hasPython(): Promise<boolean> {
  if ((await wsExec(LAB, ['sh', '-c', 'command -v python3'])).code === 0) return true;
  process.stderr.write(`[userspace e2e] no python3 on this machine: ${expect.getState().currentTestName} skipped\n`);
  return false;
}

/** Captures one IPIP-wrapped echo request sent by `src` on its switch port, plain and verbose. */
function capture(hostIndex: number, src: string): Promise<[{ stdout: string }, { stdout: string }]> {
  const sw = `${LAB}-sw`;
  const port = switchPort(hostIndex);
  // Outer and inner headers without options: inner protocol at byte 29, ICMP type at byte 40.
  const filter = `ip proto 4 and src host ${src} and ip[29] = 1 and ip[40] = 8`;
  return Promise.all([
    run(['ip', 'netns', 'exec', sw, 'timeout', '10', 'tcpdump', '-nl', '-i', port, '-c', '1', filter], { timeoutMs: 15_000 }),
    run(['ip', 'netns', 'exec', sw, 'timeout', '10', 'tcpdump', '-nlv', '-i', port, '-c', '1', filter], { timeoutMs: 15_000 }),
  ]);
}

const OUTER_INNER =
  /IP \(tos (\S+), ttl (\d+), id \d+, offset 0, flags \[(\w+)\], proto IPIP \(4\), length \d+\)\n\s+(\S+) > (\S+): IP \(tos (\S+), ttl (\d+), id \d+, offset 0, flags \[(\w+)\], proto ICMP/;

describeLab('userspace datapath on lab hosts (node1 and master without BPF)', () => {
  const lab = withLab(LAB, { hosts: 3, noBpfHosts: ['node1', 'master'], profiles: { master: 'pmtu1400' } });
  const work = mkdtempSync(join(tmpdir(), 'podnet-usdp-'));
  const routesBefore = rootRoutes();

  beforeAll(async () => {
    const dist = join(projectRoot, 'dist', 'agent');
    if (!['podnet-agent.js', 'podnet-tun.node', 'podnet-userspace-worker.js'].every((f) => existsSync(join(dist, f)))) {
      execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: projectRoot, stdio: 'inherit' });
    }
    expect(lab.info().hosts.find((h) => h.name === 'node1')!.bpf).toBe(false);
    const outdir = join(work, 'cdktf.out');
    referenceApp({ outdir, lab: LAB }).synth();
    const manifest = join(outdir, 'stacks', 'reference', 'assets', 'podnet-cluster', 'manifest.json');
    const apply = await runPodnet(['apply', '--manifest', manifest, '--lab', LAB]);
    if (apply.code !== 0) throw new Error(`apply failed: ${apply.stdout}\n${apply.stderr}`);
    await podAdd(LAB, 'node1', 'pa');
    await podAdd(LAB, 'node2', 'pa');
    await podAdd(LAB, 'master', 'pa');
  }, 5 * 60_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('auto chose userspace on node1 and master, saying why kernel and ebpf were passed over; ebpf on node2', async () => {
    const s1 = await waitStatus('node1', (s) => s.state === 'converged');
    expect(s1).toMatchObject({ state: 'converged', datapath: 'userspace' });
    // No ipip module: the kernel answers, so "not supported". BPF refused by the container's
    // seccomp filter (EPERM) says nothing of what the kernel supports: "probe failed".
    expect(s1.passedOver.kernel).toMatch(/^not supported: .*ipip/);
    expect(s1.passedOver.ebpf).toMatch(/^probe failed: .*not permitted/i);
    expect((await status('node2')).datapath).toBe('ebpf');
    expect((await waitStatus('master', (s) => s.state === 'converged')).datapath).toBe('userspace');
    const link = JSON.parse(await must('node1', ['ip', '-json', '-d', 'link', 'show', 'flannel.ipip']))[0];
    expect(link.linkinfo.info_kind).toBe('tun');
    expect(link.mtu).toBe(1480);
    expect(link.flags).toContain('LOWER_UP'); // read by the worker: carrier on
    expect(await must('node1', ['ip', '-4', 'route', 'show', '10.244.2.0/24'])).toMatch(
      /^10\.244\.2\.0\/24 via 192\.168\.0\.82 dev flannel\.ipip proto 152 onlink/,
    );
    // Nothing BPF on the userspace host.
    expect(await must('node1', ['tc', 'filter', 'show', 'dev', 'eth0', 'ingress'])).toBe('');
  });

  it('pods ping both ways, and both datapaths put the same outer header on the wire', async () => {
    const fromUserspace = capture(1, '192.168.0.81');
    const fromEbpf = capture(2, '192.168.0.82');
    await sleep(1000);
    const a = await podExec(LAB, 'node1', 'pa', ['ping', '-c', '3', '-i', '0.3', '-W', '2', '10.244.2.2']);
    expect(a.stdout).toMatch(/3 received/);
    const b = await podExec(LAB, 'node2', 'pa', ['ping', '-c', '3', '-i', '0.3', '-W', '2', '10.244.1.2']);
    expect(b.stdout).toMatch(/3 received/);
    const [[u, uv], [e, ev]] = await Promise.all([fromUserspace, fromEbpf]);
    expect(u.stdout).toContain('IP 192.168.0.81 > 192.168.0.82: IP 10.244.1.2 > 10.244.2.2: ICMP echo request');
    expect(e.stdout).toContain('IP 192.168.0.82 > 192.168.0.81: IP 10.244.2.2 > 10.244.1.2: ICMP echo request');
    const fields = (v: string) => {
      const m = OUTER_INNER.exec(v);
      if (!m) throw new Error(`unexpected tcpdump output: ${v}`);
      const [, oTos, oTtl, oFlags, , , iTos, iTtl, iFlags] = m;
      return { oTos, oTtl, oFlags, iTos, iTtl, iFlags };
    };
    for (const f of [fields(uv.stdout), fields(ev.stdout)]) {
      expect(f.oTtl).toBe(f.iTtl); // ttl inherit
      expect(f.oFlags).toBe(f.iFlags); // DF copied (nopmtudisc)
      expect(f.oFlags).toBe('DF'); // ping sets DF
      expect(f.oTos).toBe('0x0'); // inner not-ECT: no ECN bits outside
    }
    expect(fields(uv.stdout).oTtl).toBe(fields(ev.stdout).oTtl); // one forwarding hop on either side
  });

  it('path MTU across a router (1400 in front of master): pods get "Frag needed (mtu = 1380)", TCP flows both ways, status counts it', async () => {
    // Pods keep a path MTU they learn for 10 minutes and advertise a TCP MSS from it: each step
    // starts from pods that know nothing (`ip route flush cache`), the agents keep what they learned.
    const forget = () => Promise.all(['node1', 'master'].map((h) => podExec(LAB, h, 'pa', ['ip', 'route', 'flush', 'cache'])));
    const dfPing = () => podExec(LAB, 'node1', 'pa', ['ping', '-M', 'do', '-s', '1424', '-c', '2', '-i', '0.5', '-W', '2', '10.244.0.2']);
    const peerOf = (s: Status, peer: string) => s.counters!.peers.find((p) => p.node === peer)!;
    const pathMtu = (s: Status, peer: string) => peerOf(s, peer).pathMtu;
    const relayed = (s: Status, peer: string) => peerOf(s, peer).fragNeededRelayed ?? 0;
    await forget();
    // 1452-byte DF packets: the router drops the 1472-byte outer one and tells node1, whose
    // datapath relays it to the pod (answering the quoted packet) ...
    const first = await dfPing();
    expect(first.stdout).toMatch(/From 10\.244\.0\.2 icmp_seq=1 Frag needed and DF set \(mtu = 1380\)/);
    const s1 = await waitStatus('node1', (s) => pathMtu(s, 'master') === 1400 && relayed(s, 'master') > 0);
    expect(pathMtu(s1, 'master')).toBe(1400);
    expect(relayed(s1, 'master')).toBe(1);
    expect(pathMtu(s1, 'node2')).toBeUndefined();
    // ... and, having learned the path MTU, answers the next one itself without sending it.
    const counted = s1.counters!.drops!.fragNeeded ?? 0;
    await forget();
    expect((await dfPing()).stdout).toMatch(/Frag needed and DF set \(mtu = 1380\)/);
    expect((await waitStatus('node1', (s) => (s.counters!.drops!.fragNeeded ?? 0) > counted)).counters!.drops!.fragNeeded).toBe(
      counted + 1,
    );
    // 1380 bytes fit; without DF 1452 bytes go too (the outer packet has no DF either: the kernel
    // fragments it to the path MTU, master's reassembles it).
    expect((await podExec(LAB, 'node1', 'pa', ['ping', '-M', 'do', '-s', '1352', '-c', '1', '-W', '2', '10.244.0.2'])).stdout).toMatch(
      /1 received/,
    );
    expect((await podExec(LAB, 'node1', 'pa', ['ping', '-M', 'dont', '-s', '1424', '-c', '1', '-W', '2', '10.244.0.2'])).stdout).toMatch(
      /1 received/,
    );
    // TCP: master's pod learns from the router's ICMPs, relayed by master's datapath; node1's pod
    // from node1's datapath, which already knows the path and answers the too-big segments itself.
    await forget();
    await transfer('master', 'node1', '10.244.1.2', 10);
    await forget();
    await transfer('node1', 'master', '10.244.0.2', 10);
    const m = await waitStatus('master', (s) => pathMtu(s, 'node1') === 1400 && relayed(s, 'node1') > 0);
    expect(pathMtu(m, 'node1')).toBe(1400);
    expect(relayed(m, 'node1')).toBeGreaterThan(0);
    expect(m.counters!.drops).toMatchObject({ sendError: 0, tunWriteError: 0 });
    const n = await waitStatus('node1', (s) => (s.counters!.drops!.fragNeeded ?? 0) > counted + 1);
    expect(n.counters!.drops!.fragNeeded).toBeGreaterThan(counted + 1);
    expect(n.counters!.drops).toMatchObject({ sendError: 0, tunWriteError: 0 });
  }, 150_000);

  it('a forged "fragmentation needed" from an underlay host (the workstation) quoting a made-up inner packet is learned from, not relayed, and counted', async () => {
    if (!(await hasPython())) return;
    const before = (await status('node1')).counters!;
    const relayedBefore = before.peers.find((p) => p.node === 'master')!.fragNeededRelayed ?? 0;
    const foreign = (c: NonNullable<Status['counters']>) => c.drops?.fragNeededForeign ?? 0;
    // node1 > master outer header (no secret), MTU 1400 (what node1 already learned from the real
    // router), inner packets node1 never sent: from the workstation itself (relayed, node1 would
    // send it an ICMP from master's pod), and from node1's pod to node2's subnet (not master's).
    const r = await wsExec(LAB, [
      'python3',
      '-c',
      ICMP_ERROR_SENDER,
      '192.168.0.81',
      '192.168.0.80',
      '1',
      '0.05',
      '3/4/1400/192.168.0.1/10.244.0.2/1452',
      '3/4/1400/10.244.1.2/10.244.2.2/1452',
    ]);
    expect(r.code).toBe(0);
    const after = (await waitStatus('node1', (s) => foreign(s.counters!) >= foreign(before) + 2)).counters!;
    expect(foreign(after)).toBe(foreign(before) + 2);
    expect(after.peers.find((p) => p.node === 'master')!.fragNeededRelayed).toBe(relayedBefore);
    expect(after.peers.find((p) => p.node === 'master')!.pathMtu).toBe(1400); // learning stays, as the kernel's
  });

  it('ICMP errors about packets to one peer cost nothing towards another (a pending socket error is retried, not counted)', async () => {
    if (!(await hasPython())) return;
    // IP_RECVERR makes each ICMP error about our protocol-4 packets the raw socket's pending
    // error, which the next send (to any peer) fails with once. While node1's pod sends bulk TCP
    // to node2's, the workstation sends node1 200 errors about packets to master, as a router in
    // front of a dead master (host unreachable) or a smaller path (fragmentation needed) would.
    const node2Tx = (c: NonNullable<Status['counters']>) => c.peers.find((p) => p.node === 'node2')!.txBytes;
    const before = (await status('node1')).counters!;
    const server = podExec(LAB, 'node2', 'pa', ['timeout', '15', 'iperf3', '-s', '-1'], { timeoutMs: 20_000 });
    await sleep(800);
    const client = podExec(LAB, 'node1', 'pa', ['iperf3', '-c', '10.244.2.2', '-t', '3', '-J'], { timeoutMs: 20_000 });
    await sleep(500);
    const errors = await wsExec(LAB, [
      'python3',
      '-c',
      ICMP_ERROR_SENDER,
      '192.168.0.81',
      '192.168.0.80',
      '100',
      '0.01',
      '3/1/0/10.244.1.2/10.244.0.2/1000',
      '3/4/1400/10.244.1.2/10.244.0.2/1452',
    ]);
    expect(errors.code).toBe(0);
    const c = await client;
    await server;
    expect(c.code).toBe(0);
    const sent = (JSON.parse(c.stdout) as { end: { sum_sent: { bytes: number } } }).end.sum_sent.bytes;
    // Status counters are refreshed every 5 s: wait for ones that hold the whole transfer.
    const after = (await waitStatus('node1', (s) => node2Tx(s.counters!) - node2Tx(before) >= sent)).counters!;
    expect(node2Tx(after) - node2Tx(before)).toBeGreaterThanOrEqual(sent);
    const lost = (r: 'sendError' | 'fragNeeded') => after.drops![r]! - before.drops![r]!;
    process.stderr.write(
      `[userspace e2e] 200 ICMP errors about master during node1->node2 iperf3: sendError +${lost('sendError')}, fragNeeded +${lost('fragNeeded')}\n`,
    );
    expect({ sendError: lost('sendError'), fragNeeded: lost('fragNeeded') }).toEqual({ sendError: 0, fragNeeded: 0 });
  }, 60_000);

  it('moves 100 MB each way between pods intact (userspace encap, and decap of ebpf super-packets)', async () => {
    const before = (await status('node1')).counters!;
    await transfer('node1', 'node2', '10.244.2.2', 100);
    await transfer('node2', 'node1', '10.244.1.2', 100);
    const s = await waitStatus('node1', (x) => (x.counters?.peers.find((p) => p.node === 'node2')?.rxBytes ?? 0) > 100 * 1048576);
    const p = s.counters!.peers.find((x) => x.node === 'node2')!;
    const p0 = before.peers.find((x) => x.node === 'node2')!;
    expect(p.txBytes - p0.txBytes).toBeGreaterThan(100 * 1048576);
    expect(p.rxBytes - p0.rxBytes).toBeGreaterThan(100 * 1048576);
    expect(s.counters!.drops).toMatchObject({ malformed: 0, unknownSource: 0, tunWriteError: 0 });
  }, 150_000);

  it('moves 100 MB each way between two userspace nodes intact (across the router), through TSO cutting and GSO merging', async () => {
    const ips: Record<string, string> = { node1: '10.244.1.2', master: '10.244.0.2' };
    for (const [from, to] of [
      ['node1', 'master'],
      ['master', 'node1'],
    ] as const) {
      const peerOf = (c: NonNullable<Status['counters']>, node: string) => c.peers.find((p) => p.node === node)!;
      const [f0, t0] = [(await status(from)).counters!, (await status(to)).counters!];
      await transfer(from, to, ips[to]!, 100);
      // Status counters are refreshed every 5 s: wait until both show the transfer.
      const f = (await waitStatus(from, (x) => peerOf(x.counters!, to).txBytes - peerOf(f0, to).txBytes > 100 * 1048576)).counters!;
      const t = (await waitStatus(to, (x) => peerOf(x.counters!, from).rxBytes - peerOf(t0, from).rxBytes > 100 * 1048576)).counters!;
      const reads = f.offload!.tunReads - f0.offload!.tunReads;
      const segs = f.offload!.txSegments - f0.offload!.txSegments;
      const writes = t.offload!.tunWrites - t0.offload!.tunWrites;
      const merged = t.offload!.rxMerged - t0.offload!.rxMerged;
      process.stderr.write(
        `[userspace e2e] ${from} -> ${to}: ${from} cut ${reads} TUN reads into ${segs} segments; ${to} merged ${merged} received segments, ${writes} TUN writes\n`,
      );
      expect(peerOf(f, to).txBytes - peerOf(f0, to).txBytes).toBeGreaterThan(100 * 1048576);
      expect(peerOf(t, from).rxBytes - peerOf(t0, from).rxBytes).toBeGreaterThan(100 * 1048576);
      // The sender read mostly TSO super-packets; the receiver merged segments into GSO writes.
      expect(segs).toBeGreaterThan(reads * 2);
      expect(merged).toBeGreaterThan(0);
      for (const c of [f, t]) expect(c.drops).toMatchObject({ malformed: 0, unknownSource: 0, tunWriteError: 0 });
    }
  }, 240_000);

  it('drops and counts protocol 4 from a non-peer (the workstation)', async () => {
    if (!(await hasPython())) return;
    const before = (await status('node1')).counters!;
    const r = await wsExec(LAB, ['python3', '-c', IPIP_SENDER, '192.168.0.81', '10.244.1.2']);
    expect(r.code).toBe(0);
    const after = await waitStatus('node1', (s) => (s.counters?.drops?.unknownSource ?? 0) > (before.drops?.unknownSource ?? 0));
    expect(after.counters!.drops!.unknownSource).toBe((before.drops?.unknownSource ?? 0) + 1);
    expect(after.counters!.dropped).toBe(before.dropped + 1);
  });

  it('kill -9 of the agent: systemd restarts it, it reattaches the TUN, traffic flows again within 3 s', async () => {
    const pid = (await must('node1', ['systemctl', 'show', '-p', 'MainPID', '--value', UNIT])).trim();
    expect(Number(pid)).toBeGreaterThan(0);
    // -D: timestamps; replies only (-O would print the misses). 0.1 s apart for 6 s.
    const ping = podExec(LAB, 'node1', 'pa', ['ping', '-D', '-i', '0.1', '-c', '60', '-W', '1', '10.244.2.2'], { timeoutMs: 30_000 });
    await sleep(1000);
    await must('node1', ['kill', '-9', pid]);
    const r = await ping;
    const seqs = [...r.stdout.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1]));
    let gap = 0;
    for (let i = 1; i < seqs.length; i++) gap = Math.max(gap, seqs[i]! - seqs[i - 1]! - 1);
    process.stderr.write(
      `[userspace e2e] kill -9 of the agent: ${60 - seqs.length} of 60 pings lost, longest gap ${gap} (~${(gap * 0.1).toFixed(1)} s)\n`,
    );
    expect(seqs.length).toBeGreaterThan(30);
    // The TUN has no reader from the kill until the new agent's worker opens it: the unit's
    // RestartSec (1 s, which paces crash loops) plus the agent's start. Measured 1.4-1.6 s on a
    // quiet 2-vCPU machine and 2.1-3.3 s at load 10-15, so the bound is 3 s, not a promise of less.
    expect(gap).toBeLessThanOrEqual(30);
    expect(seqs[seqs.length - 1]).toBe(60); // flowing at the end
    const s = await waitStatus('node1', (x) => x.pid !== Number(pid) && x.state === 'converged');
    expect(s).toMatchObject({ datapath: 'userspace', state: 'converged' });
  }, 60_000);

  it('systemctl restart (SIGTERM): the worker stops cleanly, the device stays, the new agent carries traffic', async () => {
    const pid = (await status('node1')).pid;
    await must('node1', ['systemctl', 'restart', UNIT]);
    const s = await waitStatus('node1', (x) => x.pid !== pid && x.state === 'converged');
    expect(s).toMatchObject({ datapath: 'userspace', state: 'converged' });
    expect(await must('node1', ['journalctl', '-u', UNIT, '--no-pager', '-n', '50'])).toContain('stopped; network left in place');
    expect((await podExec(LAB, 'node1', 'pa', ['ping', '-c', '3', '-i', '0.2', '-W', '2', '10.244.2.2'])).stdout).toMatch(/3 received/);
  });

  it('throughput, pod to pod (iperf3 -t 5, one stream): userspace with ebpf and with userspace, in the same run', async () => {
    const iperf = async (from: string, to: string, toIp: string): Promise<number> => {
      const server = podExec(LAB, to, 'pa', ['timeout', '20', 'iperf3', '-s', '-1'], { timeoutMs: 25_000 });
      await sleep(800);
      const c = await podExec(LAB, from, 'pa', ['iperf3', '-c', toIp, '-t', '5', '-J'], { timeoutMs: 25_000 });
      await server;
      expect(c.code).toBe(0);
      return iperfReceivedBps(c.stdout) / 1e9;
    };
    const u = await iperf('node1', 'node2', '10.244.2.2');
    const d = await iperf('node2', 'node1', '10.244.1.2');
    // Queueing the offloads may add: ping RTT against the bulk stream's direction, idle and loaded
    // (the replies queue behind master's TUN, which now holds super-packets). Logged, not judged.
    const rtt = async () => {
      const r = await podExec(LAB, 'node1', 'pa', ['ping', '-q', '-c', '15', '-i', '0.2', '-W', '2', '10.244.0.2'], { timeoutMs: 20_000 });
      return /= [\d.]+\/([\d.]+)\/([\d.]+)\//.exec(r.stdout)?.slice(1, 3).join(' avg, ') ?? 'n/a';
    };
    const idle = await rtt();
    const [uu, loaded] = await Promise.all([iperf('master', 'node1', '10.244.1.2'), sleep(1500).then(rtt)]);
    process.stderr.write(
      `[userspace e2e] iperf3 Gbit/s: node1->node2 (userspace encap) ${u.toFixed(2)}, node2->node1 (ebpf encap, userspace decap) ${d.toFixed(2)}, master->node1 (userspace both ends) ${uu.toFixed(2)}\n`,
    );
    process.stderr.write(`[userspace e2e] ping node1->master pods, ms: idle ${idle} max; during master->node1 iperf3 ${loaded} max\n`);
    expect(u).toBeGreaterThan(0.05);
    expect(d).toBeGreaterThan(0.05);
    expect(uu).toBeGreaterThan(0.05);
  }, 60_000);

  it('destroy tears it down: no TUN, no routes, and the machine itself never got lab routes', async () => {
    const manifest = join(work, 'cdktf.out', 'stacks', 'reference', 'assets', 'podnet-cluster', 'manifest.json');
    const d = await runPodnet(['destroy', '--manifest', manifest, '--lab', LAB]);
    expect(d.code).toBe(0);
    expect((await labExec(LAB, 'node1', ['ip', 'link', 'show', 'flannel.ipip'])).code).not.toBe(0);
    expect(await must('node1', ['ip', '-4', 'route', 'show', 'proto', '152'])).toBe('');
    expect((await labExec(LAB, 'node1', ['systemctl', 'is-active', UNIT])).stdout.trim()).not.toBe('active');
    const lab = (r: string) => /(^|\s)(192\.168\.0\.|10\.244\.)/.test(r);
    expect(rootRoutes().filter(lab)).toEqual(routesBefore.filter(lab));
  });
});
