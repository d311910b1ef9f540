// The agent tells the truth (issue 15): `converged` only where traffic can flow, with the
// reason otherwise, shown by apply and drift; repairs something keeps undoing are backed off and
// counted. Two real lab hosts, the reference network's master and node1, the eBPF datapath,
// the real CLI.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, TerraformStack } from 'cdktf';
import { referenceApp } from '../../examples/reference-network';
import { PodNetwork } from '../../stacks';
import { labExec, podAdd, podDel, podExec } from '../../src/lab';
import { INSTALL_DIR, NETWORKD_DIR, parseAgentStatus, statusPath, type AgentStatus } from '../../src/model';
import { describeLab, testLabName, withLab } from './lab-support';
import { runPodnet } from './engine-support';

const LAB = testLabName('pnown');
const UNIT = 'podnet-cluster.service';
const LOADER = `${INSTALL_DIR}/podnet-bpf`;
jest.setTimeout(180_000);

describeLab('the agent tells the truth', () => {
  withLab(LAB, { hosts: 2 });
  const work = mkdtempSync(join(tmpdir(), 'podnet-truth-'));
  let manifest = '';

  async function sh(host: string, script: string, timeoutMs = 60_000): Promise<string> {
    const r = await labExec(LAB, host, ['sh', '-c', script], { timeoutMs });
    if (r.code !== 0) throw new Error(`${host}: ${script} -> ${r.code}: ${r.stderr || r.stdout}`);
    return r.stdout;
  }
  async function status(host: string): Promise<AgentStatus> {
    const parsed = parseAgentStatus(await sh(host, `cat ${statusPath('cluster')}`));
    if (!parsed.ok) throw new Error(parsed.reason);
    return parsed.status;
  }
  /** Polls the status until `ok` holds (or `ms` pass), then returns the last one read (a missing file is read again). */
  async function statusWhen(host: string, ok: (s: AgentStatus) => boolean, ms: number): Promise<AgentStatus> {
    const deadline = Date.now() + ms;
    let s = await status(host).catch(() => undefined);
    while ((!s || !ok(s)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      s = (await status(host).catch(() => undefined)) ?? s;
    }
    return s ?? status(host);
  }
  /** Synthesizes the two-node network (node1 on `datapath`) and returns its manifest. */
  function synth(name: string, datapath?: 'ebpf' | 'userspace'): string {
    const outdir = join(work, name);
    referenceApp({
      outdir,
      lab: LAB,
      nodes: [
        { name: 'master', address: '192.168.0.80' },
        { name: 'node1', address: '192.168.0.81', ...(datapath ? { datapath } : {}) },
      ],
    }).synth();
    return join(outdir, 'stacks', 'reference', 'assets', 'podnet-cluster', 'manifest.json');
  }
  async function apply(m: string, ...args: string[]): Promise<void> {
    const r = await runPodnet(['apply', '--manifest', m, '--lab', LAB, ...args]);
    if (r.code !== 0) throw new Error(`apply failed: ${r.stdout}${r.stderr}`);
  }

  beforeAll(async () => {
    manifest = synth('cdktf.out');
    await apply(manifest);
    await podAdd(LAB, 'master', 'web');
    await podAdd(LAB, 'node1', 'web');
  }, 300_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('a failed BPF attach stays degraded through later events; apply and drift say why; fixed, it converges and carries traffic', async () => {
    // Inside the agent's own mount namespace only, the loader fails at attach (as with a map
    // layout changed by an upgrade); every other command works, and the files on the host,
    // which drift and apply hash, stay podnet's own.
    const pid = (await sh('node1', `systemctl show -p MainPID --value ${UNIT}`)).trim();
    await sh(
      'node1',
      [
        `cp ${LOADER} /run/pnown-bpf-real`,
        `printf '%s\\n' '#!/bin/sh' 'case " $* " in *" attach "*) echo "podnet-bpf: injected attach failure" >&2; exit 1;; esac' 'exec /run/pnown-bpf-real "$@"' > /run/pnown-bpf-wrapper`,
        'chmod 755 /run/pnown-bpf-wrapper',
        `nsenter -t ${pid} -m mount --bind /run/pnown-bpf-wrapper ${LOADER}`,
        // A tc event: a full pass, whose attach now fails (and the egress program is gone).
        'tc filter del dev flannel.ipip egress',
      ].join(' && '),
    );
    try {
      await statusWhen('node1', (s) => s.state !== 'converged', 5_000);
      // Netlink events: each wakes a light pass, which before this fix published `converged`.
      await sh('node1', 'for i in 1 2 3; do ip link add pnown-ev type dummy; ip link del pnown-ev; sleep 0.3; done');
      await new Promise((r) => setTimeout(r, 1_500));
      const s = await status('node1');
      expect(s.state).toBe('degraded');
      expect(s.degradedReasons?.join('\n')).toContain('injected attach failure');

      const drift = await runPodnet(['drift', '--manifest', manifest, '--lab', LAB, '--json']);
      expect(drift.code).toBe(2);
      const node1 = (
        JSON.parse(drift.stdout) as { hosts: { node: string; differences: { kind: string; actual?: string }[] }[] }
      ).hosts.find((h) => h.node === 'node1')!;
      expect(node1.differences).toEqual([
        expect.objectContaining({ kind: 'agent-degraded', actual: expect.stringContaining('injected attach failure') }),
      ]);

      // Nothing to upload or restart: apply still waits for the agent, and says why it failed.
      const apply = await runPodnet(['apply', '--manifest', manifest, '--lab', LAB, '--node', 'node1']);
      expect(apply.code).toBe(1);
      expect(`${apply.stdout}${apply.stderr}`).toContain('injected attach failure');
    } finally {
      await sh('node1', `nsenter -t ${pid} -m umount ${LOADER}; rm -f /run/pnown-bpf-wrapper /run/pnown-bpf-real`);
    }
    // No event needed: the agent retries the set-up on its own, as often as its backoff allows.
    const healed = await statusWhen('node1', (s) => s.state === 'converged', 35_000);
    expect(healed).toMatchObject({ state: 'converged', datapath: 'ebpf', pid: Number(pid) });
    expect(healed.degradedReasons).toBeUndefined();
    expect((await podExec(LAB, 'node1', 'web', ['ping', '-c', '2', '-W', '2', '10.244.0.2'])).stdout).toContain('2 received');
  });

  it("without the node's address on the underlay the agent is degraded and says so, and converges once it is back", async () => {
    await sh('node1', 'ip addr del 192.168.0.81/24 dev eth0');
    let s: AgentStatus;
    try {
      s = await statusWhen('node1', (x) => x.state === 'degraded', 5_000);
    } finally {
      await sh('node1', 'ip addr add 192.168.0.81/24 dev eth0');
    }
    expect(s.degradedReasons).toContain('underlay-address eth0 expected=192.168.0.81 actual=none');
    expect((await statusWhen('node1', (x) => x.state === 'converged', 5_000)).state).toBe('converged');
  });

  it("on a host booted without a bpffs the unit mounts the host's: a shell sees the pins, and a restart adopts the programs (review finding 21)", async () => {
    const restarted = async (): Promise<AgentStatus> => {
      const pid = Number((await sh('node1', `systemctl show -p MainPID --value ${UNIT}`)).trim());
      await sh('node1', `systemctl restart ${UNIT}`);
      return statusWhen('node1', (x) => x.pid !== pid && x.state === 'converged', 20_000);
    };
    const ingressProg = async () => /\bid (\d+)/.exec(await sh('node1', 'tc filter show dev eth0 ingress'))?.[1];
    // The lab's bpffs off /sys/fs/bpf (nspawn's read-only tmpfs is left): a host booted without one.
    await sh('node1', 'umount /sys/fs/bpf');
    expect((await restarted()).state).toBe('converged');
    // Before, the agent mounted one in its unit's own mount namespace: the host saw no pins.
    expect(await sh('node1', 'grep -c " /sys/fs/bpf bpf " /proc/self/mounts')).toBe('1\n');
    expect(JSON.parse(await sh('node1', `${LOADER} status`))).toMatchObject({ pinnedMaps: 8, ingress: { attached: true } });
    const prog = await ingressProg();
    const again = await restarted();
    expect(again.state).toBe('converged');
    expect(await ingressProg()).toBe(prog); // adopted, not replaced: no new maps, no interruption
    expect(await sh('node1', `journalctl -q -o cat _PID=${again.pid}`)).not.toMatch(/ebpf: .*(attached|replaced)/);
    expect((await podExec(LAB, 'node1', 'web', ['ping', '-c', '2', '-W', '2', '10.244.0.2'])).stdout).toContain('2 received');
  });

  it("a host's node that others than root could replace is not run: the plan ships the bundled runtime and says why (review finding 17)", async () => {
    await sh('node1', 'chmod g+w /usr/bin');
    try {
      const plan = await runPodnet(['plan', '--manifest', manifest, '--lab', LAB, '--node', 'node1']);
      expect(plan.stdout).toMatch(
        /upload node runtime -> \/usr\/local\/lib\/podnet\/runtimes\/.* \(\/usr\/bin\/node is \/usr\/bin\/node, which someone other than root could replace: \/usr\/bin \(uid 0, mode 775\); the agent runs as root\)/,
      );
    } finally {
      await sh('node1', 'chmod g-w /usr/bin');
    }
    expect((await runPodnet(['plan', '--manifest', manifest, '--lab', LAB, '--node', 'node1'])).stdout).not.toContain(
      'upload node runtime',
    );
  });

  it('a tool that keeps deleting a route: repairs back off, one log line names it, every repair is counted', async () => {
    const before = await status('node1');
    const since = (await sh('node1', 'date +%s')).trim();
    // 5 s of deleting podnet's route to master as soon as it is back (bounded: 250 tries).
    await sh('node1', 'for i in $(seq 250); do ip route del 10.244.0.0/24 2>/dev/null; sleep 0.02; done', 30_000);
    // A pass logs its repairs before it publishes them: read the log first, after the last pass ended.
    await new Promise((r) => setTimeout(r, 300));
    const journal = await sh('node1', `journalctl -q -o cat -u ${UNIT} --since @${since}`);
    const during = await status('node1');
    const repairLines = journal.split('\n').filter((l) => /reconciled \(.*\): repaired/.test(l));
    const undone = journal.split('\n').filter((l) => l.includes('something keeps undoing route-missing 10.244.0.0/24'));
    // Without backoff: a repair every ~40 ms, ~100 in 5 s. With it: 3, then after 1, 2 and 4 s.
    expect(repairLines.length).toBeGreaterThanOrEqual(3);
    expect(repairLines.length).toBeLessThanOrEqual(8);
    expect(undone).toHaveLength(1);
    expect(undone[0]).toMatch(/repaired 3 times in [\d.]+ s \(woken by ip events\); next repair in 1 s/);
    expect(during.repairs - before.repairs).toBe(repairLines.reduce((n, l) => n + Number(/repaired (\d+)/.exec(l)![1]), 0));
    expect(during.backoff?.map((b) => b.key)).toContain('route-missing 10.244.0.0/24');
    // Once nothing undoes it, the next repair brings it back and the agent converges.
    const after = await statusWhen('node1', (x) => x.state === 'converged', 35_000);
    expect(after.state).toBe('converged');
    expect(await sh('node1', 'ip route show 10.244.0.0/24')).toContain('via 192.168.0.80 dev flannel.ipip');
  });

  it('a datapath switch by apply (ebpf -> userspace) takes the eBPF programs down first; the new datapath carries the traffic', async () => {
    await apply(synth('userspace', 'userspace'), '--node', 'node1');
    // Before: the tc programs stayed attached and kept carrying the traffic, counters at zero.
    expect(await sh('node1', 'tc filter show dev eth0 ingress; tc filter show dev flannel.ipip egress')).toBe('');
    expect(await sh('node1', 'ls /sys/fs/bpf/podnet 2>/dev/null | wc -l')).toBe('0\n');
    expect((await podExec(LAB, 'node1', 'web', ['ping', '-c', '3', '-i', '0.2', '-W', '2', '10.244.0.2'])).stdout).toContain('3 received');
    const s = await statusWhen('node1', (x) => (x.counters?.peers.find((p) => p.node === 'master')?.txPackets ?? 0) > 0, 8_000);
    expect(s).toMatchObject({ state: 'converged', datapath: 'userspace' });
    expect(s.counters?.peers.find((p) => p.node === 'master')?.txPackets).toBeGreaterThanOrEqual(3);
    // And back: the userspace worker stops and its device goes, eBPF takes over.
    await apply(synth('ebpf', 'ebpf'), '--node', 'node1');
    expect(await sh('node1', 'tc filter show dev eth0 ingress')).toContain('pn_');
    expect((await podExec(LAB, 'node1', 'web', ['ping', '-c', '2', '-W', '2', '10.244.0.2'])).stdout).toContain('2 received');
    expect((await status('node1')).datapath).toBe('ebpf');
  });

  it('a second network on the same hosts is refused with a clear message; it never fights the first, and its destroy leaves the first alone', async () => {
    // A rename (blue -> green) or a copy-paste: another network name, another cluster CIDR.
    const outdir = join(work, 'green');
    const app = new App({ outdir });
    const labDir = `/var/lib/podnet/lab/${LAB}`;
    new PodNetwork(new TerraformStack(app, 'reference'), 'green', {
      name: 'green',
      clusterCidr: '10.245.0.0/16',
      subnetLength: 24,
      backend: { type: 'ipip' },
      ssh: { user: 'root', privateKeyPath: `${labDir}/id_ed25519`, knownHostsPath: `${labDir}/known_hosts` },
      nodes: [{ name: 'node1', address: '192.168.0.81' }],
      podnetArgs: ['--lab', LAB],
    });
    app.synth();
    const green = join(outdir, 'stacks', 'reference', 'assets', 'podnet-green', 'manifest.json');
    const refused = await runPodnet(['apply', '--manifest', green, '--lab', LAB]);
    expect(refused.code).toBe(1);
    expect(`${refused.stdout}${refused.stderr}`).toContain("this host already runs podnet network 'cluster'");
    // No fight over the shared devices: cluster's subnet.env and agent are untouched.
    expect(await sh('node1', 'cat /run/flannel/subnet.env')).toContain('FLANNEL_NETWORK=10.244.0.0/16');
    expect((await status('node1')).state).toBe('converged');
    const destroyed = await runPodnet(['destroy', '--manifest', green, '--lab', LAB]);
    expect(destroyed.code).toBe(0);
    expect((await statusWhen('node1', (x) => x.state === 'converged', 5_000)).state).toBe('converged');
    expect((await podExec(LAB, 'node1', 'web', ['ping', '-c', '2', '-W', '2', '10.244.0.2'])).stdout).toContain('2 received');
  });

  it('fault injection: each piece broken, the agent killed mid-repair and restarted: the host ends converged with nothing extra', async () => {
    const breakages: Array<[string, string]> = [
      ['route', 'ip route del 10.244.0.0/24'],
      ['device', 'ip link del flannel.ipip'],
      ['bridge', 'ip link del cni0'],
      ['nft table', 'nft delete table ip podnet_cluster'],
      ['BPF filter', 'tc filter del dev eth0 ingress'],
      ['ip_forward', 'sysctl -qw net.ipv4.ip_forward=0'],
      ['subnet.env', 'rm /run/flannel/subnet.env'],
      ['status file', `rm ${statusPath('cluster')}`],
    ];
    const m = synth('fault', 'ebpf');
    await apply(m, '--node', 'node1'); // whatever the earlier tests left, node1 runs this config
    for (const [what, breakIt] of breakages) {
      const before = (await sh('node1', `systemctl show -p MainPID --value ${UNIT}`)).trim();
      // Break it, and kill the agent 30 ms later: in the middle of the repair the event started.
      await sh('node1', `${breakIt}; sleep 0.03; kill -9 ${before}`);
      const s = await statusWhen('node1', (x) => x.pid !== Number(before) && x.state === 'converged', 20_000).catch(() => undefined);
      if (s?.state !== 'converged')
        process.stderr.write(
          `${what}: ${JSON.stringify(await status('node1'))}\n${await sh('node1', `journalctl -q -o cat -u ${UNIT} -n 30; ip -d link show master cni0; ip link show type veth`)}\n`,
        );
      expect({ what, state: s?.state, restarted: s !== undefined && s.pid !== Number(before) }).toEqual({
        what,
        state: 'converged',
        restarted: true,
      });
    }
    // Nothing extra: one tunnel, no probe device, podnet's one route, one table, no temp files.
    const extra = await sh(
      'node1',
      [
        'ip -o link show | grep -c -e flannel.ipip -e podnet-probe || :',
        'ip -N -4 route show proto 152',
        'nft list tables | grep -c podnet_ || :',
        'ls -a /run/podnet /run/flannel | grep -c podnet-tmp || :',
      ].join('; echo --; '),
    );
    // (`linkdown`: the eBPF datapath's TUN has no reader, README says why.)
    expect(extra).toMatch(/^1\n--\n10\.244\.0\.0\/24 via 192\.168\.0\.80 dev flannel\.ipip onlink (linkdown )?\n--\n1\n--\n0\n$/);
    const drift = await runPodnet(['drift', '--manifest', m, '--lab', LAB, '--node', 'node1']);
    expect({ code: drift.code, out: drift.code === 0 ? '' : drift.stdout }).toEqual({ code: 0, out: '' });
    // The pod on the recreated bridge was put back (pod-off-bridge) and talks again.
    expect((await podExec(LAB, 'node1', 'web', ['ping', '-c', '2', '-W', '2', '10.244.0.2'])).stdout).toContain('2 received');
  });

  it('destroy keeps a cni0 and a clsact that were there before podnet, and ip_forward as podnet found it', async () => {
    const destroy = (m: string) => runPodnet(['destroy', '--manifest', m, '--lab', LAB, '--node', 'node1']);
    const ebpf = synth('ebpf2', 'ebpf');
    await podDel(LAB, 'node1', 'web'); // its veth would be left off any bridge once cni0 goes
    expect((await destroy(ebpf)).code).toBe(0);
    // What the host had before podnet: a bridge named cni0 with a pod's veth on it (made by
    // the CNI bridge plugin, say), a clsact qdisc on eth0 (another tc user), forwarding on.
    await sh(
      'node1',
      'ip link add cni0 type bridge && ip link set cni0 up && ip link add pnown-a type veth peer name pnown-b && ip link set pnown-a master cni0 && tc qdisc add dev eth0 clsact && sysctl -qw net.ipv4.ip_forward=1',
    );
    try {
      await apply(ebpf, '--node', 'node1');
      expect((await destroy(ebpf)).code).toBe(0);
      expect(await sh('node1', 'ip -br link show master cni0')).toContain('pnown-a');
      expect(await sh('node1', 'ip -4 addr show dev cni0')).not.toContain('10.244.1.1');
      expect(await sh('node1', 'tc qdisc show dev eth0')).toContain('clsact');
      expect(await sh('node1', 'sysctl -n net.ipv4.ip_forward')).toBe('1\n');
      expect(await sh('node1', 'ip link show flannel.ipip 2>&1 || :')).toContain('does not exist');
    } finally {
      await sh(
        'node1',
        'ip link del pnown-a 2>/dev/null; ip link del cni0 2>/dev/null; tc qdisc del dev eth0 clsact 2>/dev/null; sysctl -qw net.ipv4.ip_forward=0; :',
      );
    }
    // Where podnet made them, they go: an empty clsact it added, the bridge, ip_forward back to 0.
    await apply(ebpf, '--node', 'node1');
    expect((await destroy(ebpf)).code).toBe(0);
    expect(await sh('node1', 'tc qdisc show dev eth0; ip link show cni0 2>&1 || :; sysctl -n net.ipv4.ip_forward')).not.toMatch(
      /clsact|cni0: <|^1$/m,
    );
  });

  it('destroy never reports a host clean that it could not tear down (the runtime link dangles), and a retry works', async () => {
    const m = synth('ebpf3', 'ebpf');
    await apply(m, '--node', 'node1');
    const target = (await sh('node1', `readlink ${INSTALL_DIR}/node`)).trim();
    // The host's nodejs removed under a stopped agent.
    await sh('node1', `systemctl stop ${UNIT} && ln -sfn /nonexistent/node ${INSTALL_DIR}/node`);
    const failed = await runPodnet(['destroy', '--manifest', m, '--lab', LAB, '--node', 'node1']);
    expect(failed.code).toBe(1);
    expect(`${failed.stdout}${failed.stderr}`).toContain('cannot tear the network down');
    expect(await sh('node1', 'ls /etc/podnet; ip -br link show flannel.ipip')).toMatch(/cluster\.json[\s\S]*flannel\.ipip/);
    await sh('node1', `ln -sfn ${target} ${INSTALL_DIR}/node`);
    const retried = await runPodnet(['destroy', '--manifest', m, '--lab', LAB, '--node', 'node1']);
    expect(retried.code).toBe(0);
    expect(await sh('node1', 'ip link show flannel.ipip 2>&1 || :; ls /etc/podnet 2>&1 || :; tc filter show dev eth0 ingress')).not.toMatch(
      /flannel\.ipip: <|cluster\.json|pn_/,
    );
    expect(await sh('node1', `ls ${NETWORKD_DIR}`)).not.toContain('podnet');

    // Nothing of the network left to tear down (as after a reboot) and no runtime to run a
    // teardown with: destroy has nothing to fail for, and still removes the files carrying the
    // network's name outside podnet's directories (networkd's, the conflist). Before, they stayed.
    await apply(m, '--node', 'node1');
    await sh(
      'node1',
      `systemctl stop ${UNIT} && ln -sfn /nonexistent/node ${INSTALL_DIR}/node && ip link del flannel.ipip && ip link del cni0 && ip route flush proto 152 && nft delete table ip podnet_cluster && rm -rf /sys/fs/bpf/podnet && { tc qdisc del dev eth0 clsact 2>/dev/null || :; } && test -f ${NETWORKD_DIR}/10-podnet-cluster.network`,
    );
    const bare = await runPodnet(['destroy', '--manifest', m, '--lab', LAB, '--node', 'node1']);
    expect({ code: bare.code, out: bare.code === 0 ? '' : bare.stdout + bare.stderr }).toEqual({ code: 0, out: '' });
    expect(await sh('node1', `ls ${NETWORKD_DIR} /etc/cni/net.d /etc/podnet 2>&1 || :`)).not.toMatch(/podnet-cluster|cluster\.json/);
  });

  // Not the agent, but the same lab: a hardened sshd that allows one session per connection.
  it('apply, drift and destroy work on a host whose sshd has MaxSessions 1', async () => {
    await sh(
      'node1',
      "sed -i '/^MaxSessions/d' /etc/ssh/sshd_config && echo 'MaxSessions 1' >> /etc/ssh/sshd_config && systemctl restart ssh.service",
    );
    try {
      const m = synth('ebpf4', 'ebpf');
      const applied = await runPodnet(['apply', '--manifest', m, '--lab', LAB, '--node', 'node1']);
      expect({ code: applied.code, out: applied.code === 0 ? '' : `${applied.stdout}${applied.stderr}` }).toEqual({ code: 0, out: '' });
      expect((await runPodnet(['drift', '--manifest', m, '--lab', LAB, '--node', 'node1'])).code).toBe(0);
      expect((await runPodnet(['destroy', '--manifest', m, '--lab', LAB, '--node', 'node1'])).code).toBe(0);
    } finally {
      await sh('node1', "sed -i '/^MaxSessions/d' /etc/ssh/sshd_config && systemctl restart ssh.service");
    }
  });

  /** The network `name` with `clusterCidr` on both hosts (the reference network renamed or moved); returns its manifest. */
  function synthNetwork(dir: string, name: string, clusterCidr: string): string {
    const outdir = join(work, dir);
    const app = new App({ outdir });
    const labDir = `/var/lib/podnet/lab/${LAB}`;
    new PodNetwork(new TerraformStack(app, 'reference'), name, {
      name,
      clusterCidr,
      subnetLength: 24,
      backend: { type: 'ipip' },
      ssh: { user: 'root', privateKeyPath: `${labDir}/id_ed25519`, knownHostsPath: `${labDir}/known_hosts` },
      nodes: [
        { name: 'master', address: '192.168.0.80' },
        { name: 'node1', address: '192.168.0.81' },
      ],
      podnetArgs: ['--lab', LAB],
    });
    app.synth();
    return join(outdir, 'stacks', 'reference', 'assets', `podnet-${name}`, 'manifest.json');
  }
  const podnet = (cmd: string, m: string, ...args: string[]) => runPodnet([cmd, '--manifest', m, '--lab', LAB, ...args]);
  const both = async (script: string) => Promise.all(['master', 'node1'].map((h) => sh(h, script)));

  // Last, as they leave the hosts running another network than the tests above expect.
  it('a rename (cluster -> green): refused while cluster runs; cluster dead is listed as `-` lines, reported by drift, removed by apply; only green runs and carries traffic', async () => {
    await apply(synth('before-rename'), '--node', 'node1'); // the MaxSessions test destroyed it there
    const green = synthNetwork('green-rename', 'green', '10.245.0.0/16');

    // cluster's agents run: green is refused on each host, naming cluster and what to do.
    const refused = await podnet('plan', green);
    expect(refused.code).toBe(1);
    expect(refused.stdout + refused.stderr).toMatch(/master: .*network 'cluster'.*destroy/);
    expect(refused.stdout + refused.stderr).toMatch(/node1: .*network 'cluster'.*destroy/);
    expect((await podnet('apply', green)).code).toBe(1);
    expect(await sh('node1', 'ls /etc/podnet')).toBe('cluster.json\n');

    // cluster's agents stopped and disabled: what they left is cluster's, dead.
    await both(`systemctl disable --now -q ${UNIT}`);
    const plan = await podnet('plan', green, '--detailed-exitcode');
    expect(plan.code).toBe(2);
    expect(plan.stdout).toMatch(/- podnet network cluster \(agent inactive\)/);
    const drift = await podnet('drift', green);
    expect(drift.code).toBe(2);
    expect(drift.stdout).toContain('other-network cluster');

    const applied = await podnet('apply', green);
    expect({ code: applied.code, out: applied.code === 0 ? '' : applied.stdout + applied.stderr }).toEqual({ code: 0, out: '' });
    for (const host of ['master', 'node1']) {
      const left = await sh(
        host,
        [
          'ls /etc/podnet',
          'ls /etc/systemd/system | grep podnet- || :',
          'nft list tables | grep podnet_ || :',
          'ip -N -4 route show proto 152 | cut -d" " -f1',
          'ip -4 -o addr show dev flannel.ipip | grep -o "inet [^ ]*"; ip -4 -o addr show dev cni0 | grep -o "inet [^ ]*"',
        ].join('; echo --; '),
      );
      expect(left).not.toMatch(/cluster|10\.244\./);
      expect(left).toMatch(/^green\.json\n--\npodnet-green\.service\n--\ntable ip podnet_green\n--\n10\.245\.\d\.0\/24\n--\n/);
    }
    // Pods made on the old network keep its addresses: made again, they get green's.
    await podDel(LAB, 'master', 'web');
    await podDel(LAB, 'node1', 'web');
    const masterPod = await podAdd(LAB, 'master', 'web');
    await podAdd(LAB, 'node1', 'web');
    expect(masterPod.ip).toMatch(/^10\.245\./);
    expect((await podExec(LAB, 'node1', 'web', ['ping', '-c', '2', '-W', '2', masterPod.ip])).stdout).toContain('2 received');
    const clean = await podnet('drift', green);
    expect({ code: clean.code, out: clean.code === 0 ? '' : clean.stdout }).toEqual({ code: 0, out: '' });
  });

  it("a clusterCidr change: drift reports the old generation's proto-152 routes and addresses; apply removes them; a dead network beside the running one goes by its name only", async () => {
    const moved = synthNetwork('green-moved', 'green', '10.246.0.0/16');
    const drift = await podnet('drift', moved);
    expect(drift.code).toBe(2);
    expect(drift.stdout).toMatch(/route-stale 10\.245\.\d\.0\/24/);
    expect(drift.stdout).toMatch(/address-stale 10\.245\.\d\.0\/32 dev flannel\.ipip/);
    expect(drift.stdout).toMatch(/address-stale 10\.245\.\d\.1\/24 dev cni0/);
    const applied = await podnet('apply', moved);
    expect({ code: applied.code, out: applied.code === 0 ? '' : applied.stdout + applied.stderr }).toEqual({ code: 0, out: '' });
    for (const host of ['master', 'node1']) {
      const left = await sh(host, 'ip -N -4 route show proto 152; ip -4 -o addr show dev flannel.ipip; ip -4 -o addr show dev cni0');
      expect(left).not.toContain('10.245.');
      expect(left).toContain('10.246.');
    }
    const clean = await podnet('drift', moved);
    expect({ code: clean.code, out: clean.code === 0 ? '' : clean.stdout }).toEqual({ code: 0, out: '' });

    // A dead network's leftovers beside the running one (its agent was stopped after green's
    // took the devices over): its teardown must remove what carries its name and nothing green
    // uses, although its ownership record says it created flannel.ipip and cni0.
    const ifindexes = 'cat /sys/class/net/flannel.ipip/ifindex /sys/class/net/cni0/ifindex';
    const before = await sh('node1', ifindexes);
    const plantBlue = [
      "sed 's/green/blue/g' /etc/podnet/green.json > /etc/podnet/blue.json",
      "sed 's/green/blue/g' /etc/systemd/system/podnet-green.service > /etc/systemd/system/podnet-blue.service",
      'nft add table ip podnet_blue',
      `echo '{"schema":"podnet.dev/owned/v1","createdLinks":["cni0","flannel.ipip"],"adoptedLinks":[],"sysctls":{}}' > /run/podnet/blue.owned.json`,
    ].join(' && ');
    await sh('node1', plantBlue);
    const plan = await podnet('plan', moved, '--detailed-exitcode', '--node', 'node1');
    expect(plan.stdout).toMatch(/- podnet network blue \(agent inactive\)/);
    const removed = await podnet('apply', moved, '--node', 'node1');
    expect({ code: removed.code, out: removed.code === 0 ? '' : removed.stdout + removed.stderr }).toEqual({ code: 0, out: '' });
    expect(await sh('node1', `${ifindexes}; ls /etc/podnet /etc/systemd/system /run/podnet; nft list tables`)).toMatch(
      new RegExp(`^${before}(?![\\s\\S]*blue)`),
    );
    expect(await sh('node1', 'ip -N -4 route show proto 152')).toContain('10.246.');
    const cleanAfter = await podnet('drift', moved);
    expect({ code: cleanAfter.code, out: cleanAfter.code === 0 ? '' : cleanAfter.stdout }).toEqual({ code: 0, out: '' });

    // The same with green's agent not running (stopped here; failed or waiting to restart is
    // the same to apply): its devices, routes and pins stay and are green's, so blue's teardown
    // must not run at all (it would delete the flannel.ipip and cni0 its record names).
    await sh('node1', `systemctl stop podnet-green.service && ${plantBlue}`);
    const whileStopped = await podnet('apply', moved, '--node', 'node1');
    expect({ code: whileStopped.code, out: whileStopped.code === 0 ? '' : whileStopped.stdout + whileStopped.stderr }).toEqual({
      code: 0,
      out: '',
    });
    expect(await sh('node1', `${ifindexes}; ls /etc/podnet /etc/systemd/system /run/podnet; nft list tables`)).toMatch(
      new RegExp(`^${before}(?![\\s\\S]*blue)`),
    );
  });
});
