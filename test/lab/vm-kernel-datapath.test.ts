// VM lab hosts and the kernel datapath for real. Two qemu guests booting Debian's stock kernel
// (which has ipip.ko, unlike the machine's), on the lab's underlay bridge; the reference network
// applied with the real CLI, `datapath: auto`, so the agents pick the kernel datapath as they will
// on users' hosts. Proves: the hosts are VMs on the stock kernel reached as usual (exec with stdin
// and exit code, pods, reboot), flannel's seed conformance of the device, routes and subnet.env,
// pod traffic as IPIP on the wire with a byte-exact transfer, repair of deleted state, and that
// destroy leaves the host as before apply (but for the kernel's own tunl0: see the README).
// Guests are emulated (TCG) where KVM does not work, so everything is kept few and small.
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { referenceApp } from '../../examples/reference-network';
import { hostRestart, labExec, labStatus, podAdd, podDel, podExec, wsExec } from '../../src/lab';
import { run } from '../../src/lab/exec';
import { switchPort } from '../../src/lab/lab-config';
import { stockKernel } from '../../src/lab/vm-image';
import { describeVmLab, hostSnapshot, rootRoutes, testLabName, withLab } from './lab-support';
import { runPodnet } from './engine-support';
import { CLIENT, IPIP_SENDER, SERVER } from './traffic-probes';

const LAB = testLabName('vmkdp');
const NODE = '/usr/bin/node'; // the guests' Debian nodejs, which apply runs the agent on
const AGENT = '/usr/local/lib/podnet/podnet-agent.js';
jest.setTimeout(240_000);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describeVmLab('VM lab hosts on the stock kernel, and the kernel datapath end to end', () => {
  const lab = withLab(LAB, { hosts: 2, vmHosts: ['master', 'node1'] });
  const work = mkdtempSync(join(tmpdir(), 'podnet-vm-'));
  let manifest = '';
  const routesBefore = rootRoutes();
  const before = new Map<string, Awaited<ReturnType<typeof snapshot>>>();

  /** Runs on a host; throws with its output unless it exits 0. */
  async function must(host: string, argv: string[], timeoutMs = 60_000): Promise<string> {
    const r = await labExec(LAB, host, argv, { timeoutMs });
    if (r.code !== 0) throw new Error(`${host}: ${argv.join(' ')} -> ${r.code}: ${r.stderr || r.stdout}`);
    return r.stdout;
  }
  /**
   * The shared snapshot with the kernel's tunl0 taken out of its link list and returned apart:
   * ipip.ko makes tunl0 when it loads, and podnet does not unload kernel modules (nor does
   * flanneld), so it stays after destroy.
   */
  async function snapshot(host: string): Promise<{ rest: string; tunl0?: string }> {
    const text = await hostSnapshot(LAB, host);
    const tunl0 = /\{[^{}]*"ifname":"tunl0"[^{}]*\}/.exec(text)?.[0];
    return { rest: text.replace(/,?\{[^{}]*"ifname":"tunl0"[^{}]*\}/, ''), ...(tunl0 ? { tunl0 } : {}) };
  }
  /** `it` that does nothing but say so when the guests did not boot on this machine. */
  const vmIt = (name: string, fn: () => Promise<void>, timeout?: number): void => {
    it(name, async () => {
      const why = lab.skipped();
      if (why) { process.stderr.write(`[VM lab test skipped] ${name}: ${why}\n`); return; }
      await fn();
    }, timeout);
  };

  beforeAll(() => {
    const outdir = join(work, 'cdktf.out');
    referenceApp({ outdir, lab: LAB, nodes: [{ name: 'master', address: '192.168.0.80' }, { name: 'node1', address: '192.168.0.81' }] }).synth();
    manifest = join(outdir, 'stacks', 'reference', 'assets', 'podnet-cluster', 'manifest.json');
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  vmIt('boots both hosts as qemu guests on the stock kernel, reached like any lab host', async () => {
    const st = labStatus(LAB);
    for (const h of st.hosts) {
      expect(h).toMatchObject({ kind: 'vm', running: true });
      expect(['kvm', 'tcg']).toContain(h.accel);
    }
    process.stderr.write(`VM hosts run with ${st.hosts[0]!.accel!.toUpperCase()}\n`);
    expect((await must('node1', ['uname', '-r'])).trim()).toBe(stockKernel()!.version);
    // stdin, stdout and the exit code pass through `lab exec` (SSH from the workstation).
    const r = await labExec(LAB, 'node1', ['sh', '-c', 'cat; hostname; exit 3'], { input: 'from stdin\n' });
    expect(r).toMatchObject({ code: 3, stdout: 'from stdin\nnode1\n' });
    expect(await must('master', ['ping', '-c', '1', '-W', '3', '192.168.0.81'])).toContain('1 received');
    expect(await must('node1', ['ip', '-4', 'route'])).not.toMatch(/default/);
    expect(existsSync(join(lab.info().stateDir, 'hosts', 'node1', 'console.log'))).toBe(true);
    expect(readFileSync(join(lab.info().stateDir, 'hosts', 'node1', 'console.log'), 'utf8')).toContain('Linux version');
    for (const h of ['master', 'node1']) before.set(h, await snapshot(h));
  });

  vmIt("apply with datapath 'auto' picks the kernel datapath, as on users' hosts", async () => {
    const apply = await runPodnet(['apply', '--manifest', manifest, '--lab', LAB], { timeoutMs: 200_000 });
    expect(`${apply.stdout}${apply.stderr}`).toContain('2/2 hosts ok');
    const status = JSON.parse(await must('node1', [NODE, AGENT, 'status', '--network', 'cluster', '--json'])) as { datapath: string; passedOver: object; state: string };
    expect(status).toMatchObject({ datapath: 'kernel', passedOver: {}, state: 'converged' });
  }, 240_000);

  vmIt("seed conformance: flannel.ipip, its /32, route -n and subnet.env read like flanneld's", async () => {
    const link = await must('node1', ['ip', '-d', 'link', 'show', 'flannel.ipip']);
    expect(link).toContain('mtu 1480');
    // iproute2 6.1 prints the tunnel's inner protocol too ("ipip any"): flannel's docs, from an older one, omit it.
    expect(link).toMatch(/ipip (any )?remote any local 192\.168\.0\.81 ttl inherit nopmtudisc/);
    expect(await must('node1', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'flannel.ipip'])).toContain('inet 10.244.1.0/32');
    const rows = (await must('node1', ['route', '-n'])).split('\n').filter((l) => l.startsWith('10.244.')).map((l) => l.split(/\s+/));
    expect(rows.map((c) => [c[0], c[1], c[2], c[3], c[7]])).toEqual([
      ['10.244.0.0', '192.168.0.80', '255.255.255.0', 'UG', 'flannel.ipip'],
      ['10.244.1.0', '0.0.0.0', '255.255.255.0', 'U', 'cni0'],
    ]);
    expect(await must('node1', ['cat', '/run/flannel/subnet.env'])).toBe('FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1480\nFLANNEL_IPMASQ=true\n');
  });

  vmIt('pods ping both ways as IPIP on the underlay, and a TCP transfer arrives byte-exact', async () => {
    await podAdd(LAB, 'master', 'pa');
    await podAdd(LAB, 'node1', 'pa');
    const capture = run(['ip', 'netns', 'exec', `${LAB}-sw`, 'timeout', '20', 'tcpdump', '-nl', '-i', switchPort(1), '-c', '1', 'ip proto 4 and src host 192.168.0.81'], { timeoutMs: 25_000 });
    await sleep(1500);
    expect((await podExec(LAB, 'node1', 'pa', ['ping', '-c', '3', '-W', '3', '10.244.0.2'])).stdout).toContain('3 received');
    expect((await podExec(LAB, 'master', 'pa', ['ping', '-c', '3', '-W', '3', '10.244.1.2'])).stdout).toContain('3 received');
    expect((await capture).stdout).toContain('IP 192.168.0.81 > 192.168.0.80: IP 10.244.1.2 > 10.244.0.2: ICMP echo request');
    // 8 MB, not the 100 MB of the nspawn datapath tests: an emulated guest moves about 1 MB/s through Node.js.
    const server = podExec(LAB, 'node1', 'pa', [NODE, '-e', SERVER], { timeoutMs: 90_000 });
    await sleep(4000);
    const c = await podExec(LAB, 'master', 'pa', [NODE, '-e', CLIENT, '10.244.1.2', '8'], { timeoutMs: 90_000 });
    const s = await server;
    expect({ client: c.code, server: s.code }).toEqual({ client: 0, server: 0 });
    const sent = JSON.parse(c.stdout.trim()) as { bytes: number; sha: string };
    expect(sent.bytes).toBe(8 * 1048576);
    expect(JSON.parse(s.stdout.trim())).toEqual(sent);
  }, 240_000);

  vmIt("a non-peer's protocol-4 packet never reaches the pod: dropped by podnet's nftables rule and counted in status", async () => {
    type Counters = { dropped: number; drops?: { unknownSource?: number } };
    const counters = async (): Promise<Counters> => (JSON.parse(await must('node1', [NODE, AGENT, 'status', '--network', 'cluster', '--json'])) as { counters: Counters }).counters;
    const before = await counters();
    const seen = podExec(LAB, 'node1', 'pa', ['timeout', '12', 'tcpdump', '-nl', '-i', 'eth0', '-c', '1', 'icmp and src host 10.244.9.9'], { timeoutMs: 20_000 });
    await sleep(3000);
    // The workstation is on the underlay but no peer: an ICMP echo from 10.244.9.9 to the pod, in protocol 4.
    expect((await wsExec(LAB, ['python3', '-c', IPIP_SENDER, '192.168.0.81', '10.244.1.2'])).code).toBe(0);
    expect((await seen).stdout).toBe('');
    expect(await must('node1', ['nft', 'list', 'table', 'ip', 'podnet_ipip'])).toMatch(/elements = \{ 192\.168\.0\.80 \}/);
    let after = await counters();
    for (let i = 0; i < 20 && (after.drops?.unknownSource ?? 0) <= (before.drops?.unknownSource ?? 0); i++) { await sleep(1000); after = await counters(); }
    expect(after.drops?.unknownSource).toBe((before.drops?.unknownSource ?? 0) + 1);
    expect(after.dropped).toBe(before.dropped + 1);
  }, 120_000);

  vmIt('the agent restores a deleted route within a second, and the MTU and device soon after', async () => {
    const healed = (breakIt: string, healthy: string): Promise<string> => must('node1', ['sh', '-c',
      `${breakIt}; t0=$(date +%s%N); for i in $(seq 500); do if ${healthy}; then echo $(( ($(date +%s%N) - t0) / 1000000 )); exit 0; fi; sleep 0.02; done; exit 1`]);
    expect(Number(await healed('ip route del 10.244.0.0/24', 'ip route show 10.244.0.0/24 | grep -q via'))).toBeLessThan(1000);
    // Recreating a device runs iproute2 on an emulated CPU: seconds, not the nspawn hosts' < 1 s.
    const mtu = Number(await healed('ip link set flannel.ipip mtu 1300', 'ip link show flannel.ipip | grep -q "mtu 1480"'));
    const dev = Number(await healed('ip link del flannel.ipip', 'ip route show 10.244.0.0/24 | grep -q "dev flannel.ipip"'));
    process.stderr.write(`VM repair times: route <1 s, MTU ${mtu} ms, device ${dev} ms\n`);
    expect(Math.max(mtu, dev)).toBeLessThan(10_000);
    expect((await podExec(LAB, 'node1', 'pa', ['ping', '-c', '1', '-W', '3', '10.244.0.2'])).code).toBe(0);
  });

  vmIt("destroy leaves each host as before apply, but for the kernel's tunl0 (down, no address)", async () => {
    for (const h of ['master', 'node1']) await podDel(LAB, h, 'pa');
    const destroy = await runPodnet(['destroy', '--manifest', manifest, '--lab', LAB], { timeoutMs: 200_000 });
    expect(destroy.code).toBe(0);
    for (const h of ['master', 'node1']) {
      const after = await snapshot(h);
      expect(before.get(h)!.tunl0).toBeUndefined(); // no ipip.ko loaded before apply
      expect(after.tunl0).toContain('"link_type":"ipip"');
      expect(await must(h, ['ip', '-br', '-4', 'addr', 'show', 'dev', 'tunl0'])).toMatch(/^tunl0@NONE\s+DOWN\s*$/);
      expect(after.rest).toBe(before.get(h)!.rest);
    }
    expect(rootRoutes()).toEqual(routesBefore);
  }, 240_000);
  vmIt('a VM host reboots inside its qemu: back on SSH with a new boot id, its disk kept, its runtime state gone', async () => {
    const bootId = async (): Promise<string> => (await must('node1', ['cat', '/proc/sys/kernel/random/boot_id'])).trim();
    const id = await bootId();
    await must('node1', ['sh', '-c', 'echo kept > /root/reboot-check; ip link add podnet-gone type dummy']);
    await hostRestart(LAB, 'node1');
    expect(await bootId()).not.toBe(id);
    expect(await must('node1', ['cat', '/root/reboot-check'])).toBe('kept\n');
    expect(await must('node1', ['ip', '-br', 'link'])).not.toContain('podnet-gone');
    expect(await must('node1', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'])).toContain('192.168.0.81/24');
    expect(await must('master', ['ping', '-c', '1', '-W', '3', '192.168.0.81'])).toContain('1 received');
  }, 330_000);
});
