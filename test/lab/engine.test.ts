// End to end against real hosts: the lab's systemd/sshd hosts, the real podnet CLI, real
// kernel routing and the eBPF datapath. Covers plan, apply, drift, repair, destroy, host key
// checks, a host failing mid-apply, and a node added and removed.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { referenceApp } from '../../examples/reference-network';
import { labExec, podAdd, podDel, podExec } from '../../src/lab';
import { agentConfigPath, statusPath, SUBNET_ENV_PATH, tempPathFor } from '../../src/model';
import { describeLab, hostSnapshot, rootRoutes, testLabName, withLab } from './lab-support';
import { runPodnet, runShell } from './engine-support';

const LAB = testLabName('pne2e');
jest.setTimeout(180_000);

type TfJson = {
  resource: { terraform_data: { podnet_cluster: { for_each: Record<string, { apply_command: string; destroy_command: string }> } } };
};

/** Each node's command as terraform runs it: the synthesized prefix, then the instance's id (a stand-in here). */
function replayed(tf: TfJson, which: 'apply_command' | 'destroy_command'): string[] {
  return Object.entries(tf.resource.terraform_data.podnet_cluster.for_each).map(([node, e]) => `${e[which]} replay-${node}`);
}

describeLab('podnet engine on lab hosts', () => {
  withLab(LAB, { hosts: 4 });
  const work = mkdtempSync(join(tmpdir(), 'podnet-e2e-'));
  const nodes3 = [
    { name: 'master', address: '192.168.0.80' },
    { name: 'node1', address: '192.168.0.81' },
    { name: 'node2', address: '192.168.0.82' },
  ];
  let stackDir = '';
  let manifest = '';
  const snapshotsBefore = new Map<string, string>();

  const snapshot = (host: string): Promise<string> => hostSnapshot(LAB, host);
  async function agentPid(host: string): Promise<string> {
    return (await labExec(LAB, host, ['systemctl', 'show', '-p', 'MainPID', '--value', 'podnet-cluster.service'])).stdout.trim();
  }

  beforeAll(() => {
    const outdir = join(work, 'cdktf.out');
    referenceApp({ outdir, lab: LAB, nodes: nodes3 }).synth();
    stackDir = join(outdir, 'stacks', 'reference');
    manifest = join(stackDir, 'assets', 'podnet-cluster', 'manifest.json');
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('plans changes on fresh hosts (exit 2 with --detailed-exitcode) and snapshots them', async () => {
    for (const h of ['master', 'node1', 'node2', 'node3']) snapshotsBefore.set(h, await snapshot(h));
    const plan = await runPodnet(['plan', '--manifest', manifest, '--lab', LAB, '--detailed-exitcode']);
    expect(plan.stderr).toBe('');
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain('+ route 10.244.2.0/24 via 192.168.0.82 dev flannel.ipip onlink');
  });

  it('applies through the local-exec commands cdktf synthesized (test/lab/terraform.test.ts runs the real cdktf deploy)', async () => {
    const tf = JSON.parse(readFileSync(join(stackDir, 'cdk.tf.json'), 'utf8')) as TfJson;
    const creates = replayed(tf, 'apply_command');
    expect(creates).toHaveLength(3);
    const env = { ...process.env, PATH: `${join(__dirname, '..', '..', 'bin')}:${process.env.PATH}` };
    // terraform runs provisioners of independent resources in parallel, from the stack directory.
    const results = await Promise.all(creates.map((c) => runShell('sh', ['-c', c], { cwd: stackDir, env })));
    for (const r of results) expect(r).toMatchObject({ code: 0 });
    const drift = await runPodnet(['drift', '--manifest', manifest, '--lab', LAB, '--json']);
    expect(drift.code).toBe(0);
    expect(JSON.parse(drift.stdout)).toMatchObject({ schema: 'podnet.dev/drift/v2', inSync: true });
  });

  it("node1's route table reads like flannel's and the tunnel has MTU 1480", async () => {
    const routes = (await labExec(LAB, 'node1', ['ip', '-4', 'route'])).stdout;
    expect(routes).toMatch(/10\.244\.0\.0\/24 via 192\.168\.0\.80 dev flannel\.ipip proto 152 onlink/);
    expect(routes).toMatch(/10\.244\.2\.0\/24 via 192\.168\.0\.82 dev flannel\.ipip proto 152 onlink/);
    expect((await labExec(LAB, 'node1', ['cat', '/run/flannel/subnet.env'])).stdout).toBe(
      'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1480\nFLANNEL_IPMASQ=true\n',
    );
    expect((await labExec(LAB, 'node1', ['ip', 'link', 'show', 'flannel.ipip'])).stdout).toContain('mtu 1480');
  });

  it('carries pod-to-pod traffic as IPIP on the underlay', async () => {
    await podAdd(LAB, 'node1', 'web');
    await podAdd(LAB, 'node2', 'web');
    const capture = runShell('ip', [
      'netns',
      'exec',
      `${LAB}-sw`,
      'timeout',
      '8',
      'tcpdump',
      '-ni',
      'h1',
      '-c',
      '1',
      'ip proto 4 and src 192.168.0.81',
    ]);
    await new Promise((r) => setTimeout(r, 700));
    const ping = await podExec(LAB, 'node1', 'web', ['ping', '-c', '3', '-W', '2', '10.244.2.2']);
    expect(ping.stdout).toContain('3 received');
    expect((await capture).stdout).toContain('IP 192.168.0.81 > 192.168.0.82: IP 10.244.1.2 > 10.244.2.2: ICMP echo request');
  });

  it('a no-op apply changes nothing and restarts nothing', async () => {
    const pids = await Promise.all(['master', 'node1', 'node2'].map(agentPid));
    const apply = await runPodnet(['apply', '--manifest', manifest, '--lab', LAB]);
    expect(apply.code).toBe(0);
    expect(`${apply.stdout}${apply.stderr}`).toContain('3/3 hosts ok, 0 changed');
    expect(await Promise.all(['master', 'node1', 'node2'].map(agentPid))).toEqual(pids);
  });

  it('the agent restores a route deleted by hand within a second', async () => {
    const r = await labExec(LAB, 'node1', [
      'sh',
      '-c',
      'ip route del 10.244.2.0/24; for i in $(seq 50); do ip route show 10.244.2.0/24 | grep -q via && { echo restored $i; exit 0; }; sleep 0.02; done; exit 1',
    ]);
    expect(r.code).toBe(0);
  });

  it('the agent repairs a deleted device, MTU, subnet.env, masquerade table and BPF filter within a second', async () => {
    const breakages: Array<[string, string, string]> = [
      ['tunnel MTU', 'ip link set flannel.ipip mtu 1300', 'ip link show flannel.ipip | grep -q "mtu 1480"'],
      ['subnet.env', 'rm /run/flannel/subnet.env', 'grep -q FLANNEL_SUBNET=10.244.1.1/24 /run/flannel/subnet.env'],
      ['masquerade table', 'nft delete table ip podnet_cluster', 'nft list table ip podnet_cluster | grep -q masquerade'],
      ['BPF egress filter', 'tc filter del dev flannel.ipip egress', 'tc filter show dev flannel.ipip egress | grep -q pn_'],
      ['tunnel device', 'ip link del flannel.ipip', 'ip route show 10.244.2.0/24 | grep -q "dev flannel.ipip"'],
    ];
    for (const [what, breakIt, healthy] of breakages) {
      const r = await labExec(LAB, 'node1', [
        'sh',
        '-c',
        `${breakIt}; t0=$(date +%s%N); for i in $(seq 100); do if ${healthy}; then echo $(( ($(date +%s%N) - t0) / 1000000 )); exit 0; fi; sleep 0.01; done; exit 1`,
      ]);
      expect({ what, code: r.code }).toEqual({ what, code: 0 });
      expect(Number(r.stdout.trim())).toBeLessThan(1000);
    }
    expect((await podExec(LAB, 'node1', 'web', ['ping', '-c', '1', '-W', '2', '10.244.2.2'])).code).toBe(0);
  });

  it('kill -9 of the agent does not stop traffic, and the restarted agent adopts the pinned datapath', async () => {
    const ping = podExec(LAB, 'node1', 'web', ['ping', '-q', '-i', '0.05', '-c', '60', '-W', '1', '10.244.2.2'], { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 500));
    const before = await agentPid('node1');
    await labExec(LAB, 'node1', ['kill', '-9', before]);
    expect((await ping).stdout).toContain(' 0% packet loss');
    let after = '0';
    for (let i = 0; i < 50 && (after === '0' || after === before); i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await agentPid('node1');
    }
    expect(after).not.toBe(before);
    const status = await labExec(LAB, 'node1', [
      'sh',
      '-c',
      'sleep 1; /usr/local/lib/podnet/node /usr/local/lib/podnet/podnet-agent.js status --network cluster --json',
    ]);
    expect(JSON.parse(status.stdout)).toMatchObject({ state: 'converged', datapath: 'ebpf', pid: Number(after) });
  });

  it('the installed unit passes systemd-analyze verify and the agent reports its version', async () => {
    const verify = await labExec(LAB, 'node1', ['systemd-analyze', 'verify', '/etc/systemd/system/podnet-cluster.service']);
    expect(verify.stderr).toBe('');
    expect(verify.code).toBe(0);
    const version = await labExec(LAB, 'node1', ['/usr/local/lib/podnet/node', '/usr/local/lib/podnet/podnet-agent.js', '--version']);
    expect(version.stdout).toMatch(/^podnet-agent 0\.1\.0 [0-9a-f]{16}\n$/);
  });

  it('drift catches a stopped agent (exit 2) and apply repairs it', async () => {
    await labExec(LAB, 'node2', ['systemctl', 'stop', 'podnet-cluster.service']);
    const drift = await runPodnet(['drift', '--manifest', manifest, '--lab', LAB, '--json']);
    expect(drift.code).toBe(2);
    const report = JSON.parse(drift.stdout) as { hosts: Array<{ node: string; inSync: boolean; differences: Array<{ kind: string }> }> };
    expect(report.hosts.find((h) => h.node === 'node2')!.differences.map((d) => d.kind)).toContain('agent-not-running');
    expect(report.hosts.filter((h) => h.inSync).map((h) => h.node)).toEqual(['master', 'node1']);
    // SIGTERM left the network in place: pods still reach each other with the agent stopped.
    expect((await podExec(LAB, 'node1', 'web', ['ping', '-c', '1', '-W', '2', '10.244.2.2'])).code).toBe(0);
    expect((await runPodnet(['apply', '--manifest', manifest, '--lab', LAB])).code).toBe(0);
    expect((await runPodnet(['drift', '--manifest', manifest, '--lab', LAB])).code).toBe(0);
  });

  it('refuses an unknown host key, naming the host and fingerprint', async () => {
    const empty = join(work, 'empty_known_hosts');
    writeFileSync(empty, '');
    const drift = await runPodnet(['drift', '--manifest', manifest, '--lab', LAB, '--known-hosts', empty, '--node', 'node1']);
    expect(drift.code).toBe(1);
    expect(drift.stdout).toMatch(/node1.*ERROR.*SHA256:/);
    const json = await runPodnet(['drift', '--manifest', manifest, '--lab', LAB, '--known-hosts', empty, '--node', 'node1', '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout).hosts[0].error).toEqual({
      kind: 'host-key-unknown',
      message: expect.stringMatching(/^node1 .*SHA256:/),
    });
  });

  it('one host with sshd down fails alone; the others apply; re-apply converges', async () => {
    const changed = join(work, 'mtu.json');
    const m = JSON.parse(readFileSync(manifest, 'utf8'));
    writeFileSync(changed, JSON.stringify({ ...m, network: { ...m.network, mtu: 1400 } }));
    await labExec(LAB, 'node2', ['systemctl', 'stop', 'ssh.service', 'ssh.socket']);
    try {
      const apply = await runPodnet(['apply', '--manifest', changed, '--lab', LAB]);
      expect(apply.code).toBe(1);
      expect(apply.stdout).toContain('2/3 hosts ok');
      expect(apply.stderr).toMatch(/node2: FAILED/);
    } finally {
      await labExec(LAB, 'node2', ['systemctl', 'start', 'ssh.service']);
    }
    const again = await runPodnet(['apply', '--manifest', changed, '--lab', LAB]);
    expect(again.code).toBe(0);
    expect((await labExec(LAB, 'node2', ['ip', 'link', 'show', 'flannel.ipip'])).stdout).toContain('mtu 1400');
    expect((await runPodnet(['apply', '--manifest', manifest, '--lab', LAB])).code).toBe(0);
  });

  it('a non-root user applies and checks drift through sudo', async () => {
    // The user logs in with the lab's key and may run anything through sudo without a password.
    await labExec(LAB, 'node2', [
      'sh',
      '-c',
      [
        'id podop >/dev/null 2>&1 || useradd -m -s /bin/sh podop',
        'install -d -m 700 -o podop -g podop /home/podop/.ssh',
        'install -m 600 -o podop -g podop /root/.ssh/authorized_keys /home/podop/.ssh/authorized_keys',
        'echo "podop ALL=(ALL) NOPASSWD: ALL" > /etc/sudoers.d/podop && chmod 440 /etc/sudoers.d/podop',
      ].join(' && '),
    ]);
    const m = JSON.parse(readFileSync(manifest, 'utf8'));
    const asUser = (network: Record<string, unknown>) => ({
      ...m,
      network: {
        ...network,
        nodes: (network.nodes as Array<Record<string, unknown>>).map((n) => (n.name === 'node2' ? { ...n, ssh: { user: 'podop' } } : n)),
      },
    });
    const viaSudo = join(work, 'sudo.json');
    writeFileSync(viaSudo, JSON.stringify(asUser({ ...m.network, mtu: 1400 })));
    const apply = await runPodnet(['apply', '--manifest', viaSudo, '--lab', LAB, '--node', 'node2']);
    expect(apply).toMatchObject({ code: 0 });
    expect((await labExec(LAB, 'node2', ['ip', 'link', 'show', 'flannel.ipip'])).stdout).toContain('mtu 1400');
    expect((await runPodnet(['drift', '--manifest', viaSudo, '--lab', LAB, '--node', 'node2'])).code).toBe(0);
    // Back to the declared MTU, as root, for the tests that follow; the test user goes (the
    // account files it touched are left out of the destroy snapshots).
    expect((await runPodnet(['apply', '--manifest', manifest, '--lab', LAB])).code).toBe(0);
    await labExec(LAB, 'node2', ['sh', '-c', 'userdel -r podop 2>/dev/null; rm -f /etc/sudoers.d/podop']);
  });

  it('adding a node moves no subnet and never interrupts traffic between the others', async () => {
    const outdir = join(work, 'cdktf.out.4');
    referenceApp({ outdir, lab: LAB, nodes: [...nodes3, { name: 'node3', address: '192.168.0.83' }] }).synth();
    const four = join(outdir, 'stacks', 'reference', 'assets', 'podnet-cluster', 'manifest.json');
    // 0.05 s apart for the whole apply: any gap in node1 <-> node2 traffic shows as loss.
    const ping = podExec(LAB, 'node1', 'web', ['ping', '-q', '-i', '0.05', '-c', '120', '-W', '1', '10.244.2.2'], { timeoutMs: 30_000 });
    const apply = await runPodnet(['apply', '--manifest', four, '--lab', LAB]);
    expect({ code: apply.code, output: apply.code === 0 ? '' : apply.stdout + apply.stderr }).toEqual({ code: 0, output: '' });
    expect((await ping).stdout).toContain(' 0% packet loss');
    expect((await labExec(LAB, 'node1', ['cat', '/run/flannel/subnet.env'])).stdout).toContain('FLANNEL_SUBNET=10.244.1.1/24');
    expect((await labExec(LAB, 'node3', ['cat', '/run/flannel/subnet.env'])).stdout).toContain('FLANNEL_SUBNET=10.244.3.1/24');
    await podAdd(LAB, 'node3', 'web');
    expect((await podExec(LAB, 'node3', 'web', ['ping', '-c', '2', '-W', '2', '10.244.1.2'])).stdout).toContain('2 received');

    // Remove node3 again: the removed node's own destroy (as cdktf would run it), then apply.
    const destroy = await runPodnet(['destroy', '--network', 'cluster', '--node', 'node3', '--address', '192.168.0.83', '--lab', LAB]);
    expect(destroy.code).toBe(0);
    expect((await runPodnet(['apply', '--manifest', manifest, '--lab', LAB])).code).toBe(0);
    expect((await labExec(LAB, 'node1', ['ip', 'route'])).stdout).not.toContain('10.244.3.0/24');
    await podDel(LAB, 'node3', 'web'); // made by CNI, not podnet: a kubelet would remove it
    expect(await snapshot('node3')).toBe(snapshotsBefore.get('node3'));
  });

  it("ships podnet's own Node to a host without one, refuses when told to use the host's, and moves to the host's once it has one", async () => {
    const m = JSON.parse(readFileSync(manifest, 'utf8'));
    const withRuntime = (agentRuntime: string) => {
      const path = join(work, `runtime-${agentRuntime}.json`);
      writeFileSync(
        path,
        JSON.stringify({
          ...m,
          network: { ...m.network, agentRuntime, nodes: [...m.network.nodes, { name: 'node3', address: '192.168.0.83' }] },
        }),
      );
      return path;
    };
    const runtimeLink = async () => (await labExec(LAB, 'node3', ['readlink', '/usr/local/lib/podnet/node'])).stdout.trim();
    await labExec(LAB, 'node3', ['mv', '/usr/bin/node', '/root/node.hidden']);
    try {
      const refused = await runPodnet(['apply', '--manifest', withRuntime('host'), '--lab', LAB, '--node', 'node3']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/node3: FAILED .*no `node` on its PATH.*agentRuntime is 'host'/);
      expect((await labExec(LAB, 'node3', ['test', '-e', '/etc/podnet/cluster.json'])).code).not.toBe(0);

      const shipped = await runPodnet(['apply', '--manifest', withRuntime('auto'), '--lab', LAB, '--node', 'node3']);
      expect({ code: shipped.code, err: shipped.stderr }).toMatchObject({ code: 0, err: expect.stringContaining('uploaded node runtime') });
      expect(await runtimeLink()).toMatch(/^\/usr\/local\/lib\/podnet\/runtimes\/[0-9a-f]{16}\/node$/);
      expect((await runPodnet(['drift', '--manifest', withRuntime('auto'), '--lab', LAB, '--node', 'node3'])).code).toBe(0);
    } finally {
      await labExec(LAB, 'node3', ['mv', '/root/node.hidden', '/usr/bin/node']);
    }
    // The host has a Node again: auto moves the agent onto it (a restart, nothing uploaded).
    const moved = await runPodnet(['apply', '--manifest', withRuntime('auto'), '--lab', LAB, '--node', 'node3']);
    expect({ code: moved.code, err: moved.stderr }).toMatchObject({
      code: 0,
      err: expect.stringMatching(/linked \/usr\/bin\/node \(v\d+/),
    });
    expect(moved.stderr).not.toContain('uploaded');
    expect(await runtimeLink()).toBe('/usr/bin/node');
    expect((await labExec(LAB, 'node3', ['test', '-e', '/usr/local/lib/podnet/runtimes'])).code).not.toBe(0); // shipped one gone
    // With the agent stopped, destroy cannot ask it to tear down: its own teardown process does.
    await labExec(LAB, 'node3', ['systemctl', 'stop', 'podnet-cluster.service']);
    expect((await runPodnet(['destroy', '--network', 'cluster', '--node', 'node3', '--address', '192.168.0.83', '--lab', LAB])).code).toBe(
      0,
    );
    expect(await snapshot('node3')).toBe(snapshotsBefore.get('node3'));
  });

  it('the cdktf destroy commands leave every host exactly as before the first apply', async () => {
    const tf = JSON.parse(readFileSync(join(stackDir, 'cdk.tf.json'), 'utf8')) as TfJson;
    const env = { ...process.env, PATH: `${join(__dirname, '..', '..', 'bin')}:${process.env.PATH}` };
    // The destroy provisioner runs `${self.input.destroy_command} ${self.id}`: substitute it as terraform does.
    const destroys = replayed(tf, 'destroy_command');
    // What a crash between writing a temp file and renaming it leaves behind: destroy removes it with the file.
    for (const h of ['master', 'node1', 'node2']) {
      await labExec(LAB, h, [
        'touch',
        tempPathFor(statusPath('cluster')),
        tempPathFor(SUBNET_ENV_PATH),
        tempPathFor(agentConfigPath('cluster'), '0'),
      ]);
    }
    // Later applies by hand passed no --revision: the hosts still hold the replayed id, so the guard lets destroy through.
    const results = await Promise.all(destroys.map((c) => runShell('sh', ['-c', c], { cwd: stackDir, env })));
    for (const r of results) expect(r).toMatchObject({ code: 0 });
    // Pods were made by CNI, not podnet: remove them before comparing (a real kubelet would).
    for (const h of ['node1', 'node2']) await podDel(LAB, h, 'web');
    for (const h of ['master', 'node1', 'node2']) {
      expect(await snapshot(h)).toBe(snapshotsBefore.get(h));
      // The running agent tore the host down as it stopped; no second teardown process ran.
      const journal = (await labExec(LAB, h, ['journalctl', '-u', 'podnet-cluster.service', '-n', '40', '--no-pager', '-o', 'cat'])).stdout;
      expect(journal).toContain('stopping for podnet destroy: tearing the network down');
      expect(journal.slice(journal.lastIndexOf('stopping for podnet destroy'))).toContain('teardown complete');
    }
  });

  it("never adds a lab route to the machine's own namespace", () => {
    expect(rootRoutes().filter((r) => /^(192\.168\.0\.|10\.244\.)/.test(r))).toEqual([]);
  });
});
