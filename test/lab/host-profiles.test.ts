// podnet on hosts set up like users' hosts (issue 14): lab host profiles give the underlay NIC
// another name and a smaller MTU (as cloud and OpenStack VMs have), and podnet must find both
// on each host, as flanneld does, instead of assuming eth0 at 1500.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labExec, podAdd, podDel, podExec } from '../../src/lab';
import { buildManifest, type NetworkSpec } from '../../src/model';
import { runPodnet } from './engine-support';
import { describeLab, testLabName, withLab } from './lab-support';

const LAB = testLabName('pnhost-profiles');
const spec: NetworkSpec = {
  name: 'cluster', clusterCidr: '10.244.0.0/16', subnetLength: 24, backend: { type: 'ipip' },
  nodes: [{ name: 'master', address: '192.168.0.80' }, { name: 'node1', address: '192.168.0.81' }, { name: 'node2', address: '192.168.0.82' }],
};

/** What destroy must give back exactly: links, addresses, routes, sysctls, firewall rules, podnet's paths. */
export async function hostSnapshot(lab: string, host: string): Promise<string> {
  const script = [
    "ip -json link show | sed -E 's/\"(operstate|linkmode|group|txqlen|flags)\":[^,]*,//g'",
    'ip -4 -br addr', 'ip -json -4 route show table all',
    'sysctl net.ipv4.ip_forward net.ipv4.conf.all.forwarding',
    'nft list ruleset', 'iptables-legacy-save 2>/dev/null | grep -v "^#"',
    'ls /etc/systemd/network /etc/NetworkManager/conf.d /run/flannel /run/podnet /etc/podnet /usr/local/lib/podnet 2>&1',
  ].join('; ');
  return (await labExec(lab, host, ['sh', '-c', script])).stdout;
}

describeLab('podnet on profiled hosts: NIC ens33 at MTU 1450', () => {
  const profile = 'ens33-mtu1450';
  withLab(LAB, { profiles: { master: profile, node1: profile, node2: profile } });
  const work = mkdtempSync(join(tmpdir(), 'podnet-profiles-'));
  const manifestOf = (name: string, s: NetworkSpec): string => {
    const path = join(work, `${name}.json`);
    writeFileSync(path, JSON.stringify(buildManifest(s), null, 2));
    return path;
  };
  const manifest = manifestOf('detect', spec);
  const before = new Map<string, string>();
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('plan finds each host\'s interface and MTU and says where they came from', async () => {
    for (const h of ['master', 'node1', 'node2']) before.set(h, await hostSnapshot(LAB, h));
    const plan = await runPodnet(['plan', '--manifest', manifest, '--lab', LAB]);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toContain('# node1 (192.168.0.81)\n  underlay ens33 (detected), mtu 1450 (detected), tunnel mtu 1430 (underlay - 20)');
  });

  it('refuses at plan time what the hosts cannot carry, naming host, what exists and what to set', async () => {
    const eth0 = await runPodnet(['plan', '--manifest', manifestOf('eth0', { ...spec, underlay: { interface: 'eth0' } }), '--lab', LAB]);
    expect(eth0.code).toBe(1);
    expect(eth0.stdout).toContain('node1: ERROR host node1 (192.168.0.81): the declared underlay interface eth0 does not exist; the host has ens33 (mtu 1450, 192.168.0.81/24)');
    const big = await runPodnet(['plan', '--manifest', manifestOf('mtu', { ...spec, mtu: 1480 }), '--lab', LAB]);
    expect(big.code).toBe(1);
    expect(big.stdout).toContain("the declared mtu 1480 is above what the underlay carries (ens33's MTU 1450 - 20 = 1430). Set mtu to at most 1430");
  });

  it('applies with the tunnel, subnet.env and pods at 1430, and drift is clean', async () => {
    const apply = await runPodnet(['apply', '--manifest', manifest, '--lab', LAB]);
    expect({ code: apply.code, out: apply.code ? apply.stdout + apply.stderr : '' }).toEqual({ code: 0, out: '' });
    expect((await labExec(LAB, 'node1', ['ip', 'link', 'show', 'flannel.ipip'])).stdout).toContain('mtu 1430');
    expect((await labExec(LAB, 'node1', ['cat', '/run/flannel/subnet.env'])).stdout).toContain('FLANNEL_MTU=1430\n');
    const drift = await runPodnet(['drift', '--manifest', manifest, '--lab', LAB]);
    expect({ code: drift.code, out: drift.stdout }).toEqual({ code: 0, out: expect.stringContaining('network cluster: in sync') });
  });

  it('carries full-size packets and TCP between pods, and pod traffic out of the cluster', async () => {
    await podAdd(LAB, 'node1', 'web');
    await podAdd(LAB, 'node2', 'web');
    expect((await podExec(LAB, 'node1', 'web', ['ip', 'link', 'show', 'eth0'])).stdout).toContain('mtu 1430');
    // 1402 + 28 = 1430: the largest unfragmented packet the tunnel takes; 1450 on the wire.
    const df = await podExec(LAB, 'node1', 'web', ['ping', '-M', 'do', '-s', '1402', '-c', '3', '-i', '0.2', '-W', '2', '10.244.2.2']);
    expect(df.stdout).toContain('3 received');
    await podExec(LAB, 'node2', 'web', ['sh', '-c', 'iperf3 -s -1 -D']);
    await new Promise((r) => setTimeout(r, 300));
    const iperf = await podExec(LAB, 'node1', 'web', ['iperf3', '-c', '10.244.2.2', '-t', '2', '-J'], { timeoutMs: 20_000 });
    const bps = (JSON.parse(iperf.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
    process.stderr.write(`[host-profiles] ${profile}: pod-to-pod TCP ${(bps / 1e9).toFixed(2)} Gbit/s\n`);
    expect(bps).toBeGreaterThan(100e6);
    // Out of the cluster: the workstation (192.168.0.1) stands for the outside world; masqueraded.
    expect((await podExec(LAB, 'node1', 'web', ['ping', '-c', '2', '-W', '2', '192.168.0.1'])).stdout).toContain('2 received');
  });

  it('drift reports an underlay whose MTU changed under the running agent', async () => {
    await labExec(LAB, 'node2', ['ip', 'link', 'set', 'ens33', 'mtu', '1400']);
    try {
      const drift = await runPodnet(['drift', '--manifest', manifest, '--lab', LAB, '--json']);
      expect(drift.code).toBe(2);
      const node2 = (JSON.parse(drift.stdout) as { hosts: { node: string; differences: { kind: string; expected?: string; actual?: string }[] }[] }).hosts.find((h) => h.node === 'node2')!;
      expect(node2.differences).toEqual(expect.arrayContaining([
        expect.objectContaining({ kind: 'underlay-changed', subject: 'ens33' }),
        expect.objectContaining({ kind: 'tunnel-mtu', expected: '1380', actual: '1430' }),
      ]));
    } finally {
      await labExec(LAB, 'node2', ['ip', 'link', 'set', 'ens33', 'mtu', '1450']);
    }
  });

  it('destroy leaves every host as its profile made it', async () => {
    for (const h of ['node1', 'node2']) await podDel(LAB, h, 'web'); // made by CNI, not podnet: a kubelet would remove it
    const destroy = await runPodnet(['destroy', '--manifest', manifest, '--lab', LAB]);
    expect(destroy.code).toBe(0);
    for (const h of ['master', 'node1', 'node2']) expect(await hostSnapshot(LAB, h)).toBe(before.get(h));
  });
});
