// `cdktf deploy` / `cdktf destroy` for real: the repo's cdktf CLI and terraform (>= 1.4, built-in
// terraform_data, no provider download), run from the lab's workstation namespace as a user's
// workstation would run them, against real lab hosts. Each deploy's podnet calls are counted
// through a wrapper on terraform's PATH, so "runs nothing on the hosts" is checked, not assumed.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PodNetworkProps } from '../../stacks';
import { labExec, podAdd, podDel, podExec, readLab } from '../../src/lab';
import { describeUnless, hostSnapshot, requireLabOrSkip, rootRoutes, testLabName, withLab } from './lab-support';
import { podnetBin, projectRoot, runPodnet, runShell } from './engine-support';
import type { CommandResult } from '../../src/host/command-result';

const LAB = testLabName('pntf');
jest.setTimeout(240_000);

/** Why this file cannot run here: no lab, or no terraform on PATH. */
function skipReason(): string | undefined {
  const lab = requireLabOrSkip();
  if (lab) return lab;
  try {
    execFileSync('terraform', ['version'], { stdio: 'pipe', env: { ...process.env, CHECKPOINT_DISABLE: '1' } });
    return undefined;
  } catch {
    return 'terraform is not on PATH (install terraform >= 1.4 to run cdktf deploy end to end)';
  }
}

const nodes3 = [
  { name: 'master', address: '192.168.0.80' },
  { name: 'node1', address: '192.168.0.81' },
  { name: 'node2', address: '192.168.0.82' },
];
const node3 = { name: 'node3', address: '192.168.0.83' };

describeUnless(skipReason(), 'terraform', 'cdktf deploy and destroy with real terraform on lab hosts', () => {
  withLab(LAB, { hosts: 4 });
  const work = mkdtempSync(join(tmpdir(), 'podnet-tf-'));
  const project = join(work, 'project');
  const stackDir = join(project, 'cdktf.out', 'stacks', 'reference');
  const manifest = join(stackDir, 'assets', 'podnet-cluster', 'manifest.json');
  const calls = join(work, 'podnet-calls.log');
  const before = new Map<string, string>();
  let props: PodNetworkProps;

  /** A workstation's SSH files: the lab's key and known_hosts, copied to where that workstation keeps them. */
  function workstation(name: string): { privateKeyPath: string; knownHostsPath: string } {
    const info = readLab(LAB)!;
    const dir = join(work, name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    copyFileSync(info.sshKeyPath, join(dir, 'id_ed25519'));
    chmodSync(join(dir, 'id_ed25519'), 0o600);
    copyFileSync(info.knownHostsPath, join(dir, 'known_hosts'));
    return { privateKeyPath: join(dir, 'id_ed25519'), knownHostsPath: join(dir, 'known_hosts') };
  }

  /** Runs the cdktf CLI (or terraform) in the workstation namespace, with podnet on PATH behind a call counter. */
  function inWorkstation(argv: string[], cwd: string): Promise<CommandResult> {
    const env = {
      ...process.env,
      PATH: `${join(work, 'bin')}:${process.env.PATH}`,
      TF_CLI_CONFIG_FILE: '/dev/null',
      CHECKPOINT_DISABLE: '1',
      CI: '1',
      FORCE_COLOR: '0',
      NO_COLOR: '1',
    };
    return runShell('ip', ['netns', 'exec', readLab(LAB)!.workstation.netns, ...argv], { cwd, env, timeoutMs: 200_000 });
  }

  const cdktfBin = join(projectRoot, 'node_modules', '.bin', 'cdktf');
  let lastSeconds = 0;
  /** `cdktf deploy` of `next`; returns the CLI result and the podnet calls terraform made. */
  async function deploy(next: PodNetworkProps): Promise<CommandResult & { podnet: string[] }> {
    props = next;
    writeFileSync(join(project, 'network.json'), JSON.stringify(next));
    writeFileSync(calls, '');
    const t0 = Date.now();
    const r = await inWorkstation([cdktfBin, 'deploy', 'reference', '--auto-approve'], project);
    lastSeconds = (Date.now() - t0) / 1000;
    process.stderr.write(`[terraform.test] cdktf deploy: ${lastSeconds.toFixed(1)} s\n`);
    return { ...r, podnet: readFileSync(calls, 'utf8').split('\n').filter(Boolean) };
  }
  const ok = (r: CommandResult) =>
    expect({ code: r.code, out: r.code === 0 ? '' : `${r.stdout}\n${r.stderr}` }).toEqual({ code: 0, out: '' });

  async function agentPid(host: string): Promise<string> {
    return (await labExec(LAB, host, ['systemctl', 'show', '-p', 'MainPID', '--value', 'podnet-cluster.service'])).stdout.trim();
  }
  async function hostFiles(host: string): Promise<string> {
    return (
      await labExec(LAB, host, [
        'sh',
        '-c',
        'cat /etc/podnet/cluster.json /etc/podnet/cluster.revision /etc/systemd/system/podnet-cluster.service',
      ])
    ).stdout;
  }
  async function pingLoss(host: string, to: string, during: Promise<unknown>): Promise<number> {
    // 0.05 s apart while `during` runs: each lost echo is 50 ms without connectivity.
    const ping = podExec(LAB, host, 'web', ['ping', '-q', '-i', '0.05', '-c', '1200', '-W', '1', to], { timeoutMs: 120_000 });
    await during;
    await labExec(LAB, host, ['ip', 'netns', 'exec', 'web', 'pkill', '-INT', '-x', 'ping']);
    const out = (await ping).stdout;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    if (!m) throw new Error(`no ping summary: ${out}`);
    return Number(m[1]) - Number(m[2]);
  }

  beforeAll(async () => {
    mkdirSync(join(work, 'bin'));
    // terraform's local-exec finds `podnet` on PATH: the real CLI, each call logged first.
    writeFileSync(join(work, 'bin', 'podnet'), `#!/bin/sh\nprintf '%s\\n' "$*" >> ${calls}\nexec ${process.execPath} ${podnetBin} "$@"\n`, {
      mode: 0o755,
    });
    mkdirSync(project);
    writeFileSync(
      join(project, 'cdktf.json'),
      JSON.stringify({
        language: 'typescript',
        app: `${join(projectRoot, 'node_modules', '.bin', 'tsx')} ${join(projectRoot, 'examples', 'network-json.ts')}`,
        projectId: 'podnet-terraform-test',
        sendCrashReports: 'false',
      }),
    );
    for (const h of ['master', 'node1', 'node2', 'node3']) before.set(h, await hostSnapshot(LAB, h));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const base = (): PodNetworkProps => ({
    name: 'cluster',
    clusterCidr: '10.244.0.0/16',
    backend: { type: 'ipip', directRouting: false, datapath: 'auto' },
    ssh: { user: 'root', ...workstation('alice') },
    nodes: nodes3,
  });

  it('a fresh deploy applies every node in parallel, and pods talk across nodes', async () => {
    const r = await deploy(base());
    ok(r);
    expect(r.stdout).toMatch(/3 added, 0 changed, 0 destroyed/);
    expect(r.podnet.map((c) => c.split(' --node ')[1]?.split(' ')[0]).sort()).toEqual(['master', 'node1', 'node2']);
    expect((await runPodnet(['drift', '--manifest', manifest, '--lab', LAB])).code).toBe(0);
    await podAdd(LAB, 'node1', 'web');
    await podAdd(LAB, 'node2', 'web');
    expect((await podExec(LAB, 'node1', 'web', ['ping', '-c', '2', '-W', '2', '10.244.2.2'])).stdout).toContain('2 received');
    // The host records the instance's own id: the destroy guard's token.
    const state = JSON.parse((await inWorkstation(['terraform', 'show', '-json'], stackDir)).stdout) as {
      values: { root_module: { resources: Array<{ index: string; values: { id: string } }> } };
    };
    const id = state.values.root_module.resources.find((x) => x.index === 'node1')!.values.id;
    expect((await labExec(LAB, 'node1', ['cat', '/etc/podnet/cluster.revision'])).stdout.trim()).toBe(id);
  });

  it('a second deploy runs nothing on the hosts', async () => {
    const pids = await Promise.all(nodes3.map((n) => agentPid(n.name)));
    const r = await deploy(props);
    ok(r);
    expect(r.stdout).toMatch(/No changes/);
    expect(r.podnet).toEqual([]);
    expect(await Promise.all(nodes3.map((n) => agentPid(n.name)))).toEqual(pids);
  });

  it('a deploy from a second workstation (other key and known_hosts paths) changes nothing on the hosts', async () => {
    const files = await Promise.all(nodes3.map((n) => hostFiles(n.name)));
    const pids = await Promise.all(nodes3.map((n) => agentPid(n.name)));
    const r = await deploy({ ...props, ssh: { user: 'root', ...workstation('ci-runner') } });
    ok(r);
    // Only the recorded destroy command moves (an in-place update of `input`).
    expect(r.stdout).toMatch(/0 added, 3 changed, 0 destroyed/);
    expect(r.podnet).toEqual([]);
    expect(await Promise.all(nodes3.map((n) => hostFiles(n.name)))).toEqual(files);
    expect(await Promise.all(nodes3.map((n) => agentPid(n.name)))).toEqual(pids);
    // podnet itself from that workstation: nothing to change either.
    const apply = await runPodnet([
      'apply',
      '--manifest',
      manifest,
      '--lab',
      LAB,
      '--ssh-key',
      props.ssh!.privateKeyPath!,
      '--known-hosts',
      props.ssh!.knownHostsPath!,
    ]);
    expect(`${apply.stdout}`).toContain('3/3 hosts ok, 0 changed');
    expect(await Promise.all(nodes3.map((n) => hostFiles(n.name)))).toEqual(files);
  });

  it('a model change (MTU, directRouting) converges with under a second of ping loss', async () => {
    let r: (CommandResult & { podnet: string[] }) | undefined;
    const lost = await pingLoss(
      'node1',
      '10.244.2.2',
      deploy({ ...props, mtu: 1400, backend: { type: 'ipip', directRouting: true, datapath: 'auto' } }).then((x) => (r = x)),
    );
    ok(r!);
    expect(r!.stdout).toMatch(/3 added, 0 changed, 3 destroyed/);
    expect(r!.podnet.every((c) => c.startsWith('apply '))).toBe(true); // no teardown of a replaced instance
    expect(lost * 0.05).toBeLessThan(1);
    expect((await labExec(LAB, 'node1', ['ip', 'link', 'show', 'flannel.ipip'])).stdout).toContain('mtu 1400');
    expect((await labExec(LAB, 'node1', ['ip', '-4', 'route', 'show', '10.244.2.0/24'])).stdout).toMatch(/via 192\.168\.0\.82 dev eth0/);
    expect((await runPodnet(['drift', '--manifest', manifest, '--lab', LAB])).code).toBe(0);
    expect((await podExec(LAB, 'node1', 'web', ['ping', '-c', '1', '-W', '2', '10.244.2.2'])).code).toBe(0);
  });

  it("terraform apply -replace of one node keeps that node's network", async () => {
    const revision = (await labExec(LAB, 'node1', ['cat', '/etc/podnet/cluster.revision'])).stdout.trim();
    writeFileSync(calls, '');
    const lost = await pingLoss(
      'node1',
      '10.244.2.2',
      inWorkstation(
        ['terraform', 'apply', '-auto-approve', '-input=false', '-no-color', '-replace=terraform_data.podnet_cluster["node1"]'],
        stackDir,
      ).then(ok),
    );
    expect(lost).toBe(0);
    const podnetCalls = readFileSync(calls, 'utf8').split('\n').filter(Boolean);
    expect(podnetCalls).toHaveLength(1);
    expect(podnetCalls[0]).toMatch(/^apply .*--node node1 /);
    expect((await labExec(LAB, 'node1', ['cat', '/etc/podnet/cluster.revision'])).stdout.trim()).not.toBe(revision);
    expect((await runPodnet(['drift', '--manifest', manifest, '--lab', LAB])).code).toBe(0);
  });

  it("a node renamed on the same host: the old name's teardown and the new name's apply take turns on its lock", async () => {
    const renamed = nodes3.map((n) => (n.name === 'node2' ? { ...n, name: 'worker2' } : n));
    // Drained first, as a rename should be: when the old name's teardown runs first, the host's
    // network is rebuilt and pods on it lose their cni0 attachment, as with any teardown.
    await podDel(LAB, 'node2', 'web');
    const r = await deploy({ ...props, nodes: renamed });
    ok(r);
    expect(
      r.podnet
        .filter((c) => / --node (node2|worker2) /.test(c))
        .map((c) => c.split(' ')[0])
        .sort(),
    ).toEqual(['apply', 'destroy']);
    expect(JSON.parse((await labExec(LAB, 'node2', ['cat', '/etc/podnet/cluster.json'])).stdout)).toMatchObject({ node: 'worker2' });
    // Terraform orders the two freely: either the teardown ran first and the apply installed anew,
    // or the apply ran first and the guard kept the teardown off. Either way the host ends right.
    // One run of several saw drift here right after the deploy (cause not yet found): the agent
    // gets a few seconds to settle, and what drift reports is shown if it does not.
    let drift = await runPodnet(['drift', '--manifest', manifest, '--lab', LAB]);
    for (let i = 0; i < 5 && drift.code !== 0; i++) {
      process.stderr.write(`[terraform.test] drift after the rename (try ${i + 1}):\n${drift.stdout}\n`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      drift = await runPodnet(['drift', '--manifest', manifest, '--lab', LAB]);
    }
    expect({ code: drift.code, out: drift.code === 0 ? '' : drift.stdout }).toEqual({ code: 0, out: '' });
    ok(await deploy({ ...props, nodes: nodes3 }));
    expect((await runPodnet(['drift', '--manifest', manifest, '--lab', LAB])).code).toBe(0);
    await podAdd(LAB, 'node2', 'web');
  });

  /** The synthesized manifest with `edit` applied to its network, written beside it. */
  function manifestWith(name: string, edit: (network: Record<string, unknown>) => Record<string, unknown>): string {
    const m = JSON.parse(readFileSync(manifest, 'utf8')) as { network: Record<string, unknown> };
    const file = join(work, `${name}.json`);
    writeFileSync(file, JSON.stringify({ ...m, network: edit(m.network) }));
    return file;
  }
  const lockFileOn = async (host: string) => (await labExec(LAB, host, ['cat', '/run/podnet/cluster.lock'])).stdout;

  it("two podnet apply at once: the second fails on podnet's host lock naming the first, and changes nothing", async () => {
    const mtu1300 = manifestWith('mtu1300', (n) => ({ ...n, mtu: 1300 }));
    const first = runPodnet(['apply', '--manifest', mtu1300, '--lab', LAB]);
    let holder = '';
    for (let i = 0; i < 200 && !holder.includes('"expires"'); i++) holder = await lockFileOn('node2');
    const second = await runPodnet(['apply', '--manifest', manifest, '--lab', LAB]);
    ok(await first);
    const pid = (JSON.parse(holder) as { pid: number }).pid;
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`node2: locked by \\S+@\\S+ \\(pid ${pid}, podnet apply\\) since \\d{4}-\\d\\d-\\d\\dT`));
    expect(second.stderr).toContain('podnet force-unlock --node node2 ');
    // The first apply's model is what runs, and the locks are gone with it.
    expect((await labExec(LAB, 'node2', ['ip', 'link', 'show', 'flannel.ipip'])).stdout).toContain('mtu 1300');
    expect((await labExec(LAB, 'node2', ['test', '-e', '/run/podnet/cluster.lock'])).code).not.toBe(0);
    ok(await runPodnet(['apply', '--manifest', manifest, '--lab', LAB]));
  });

  it('a lock left by a killed apply: waits --lock-timeout, names it, force-unlock frees it; an expired one is taken over; garbage is refused', async () => {
    const now = Math.floor(Date.now() / 1000);
    const stale = {
      id: 'deadbeef-0000-4000-8000-000000000001',
      user: 'ci',
      workstation: 'runner-7',
      pid: 999999,
      operation: 'apply',
      since: now - 60,
      expires: now + 840,
    };
    const plant = (text: string) => labExec(LAB, 'node1', ['sh', '-c', `printf '%s\\n' '${text}' > /run/podnet/cluster.lock`]);
    await plant(JSON.stringify(stale));
    const t0 = Date.now();
    const waited = await runPodnet(['apply', '--manifest', manifest, '--lab', LAB, '--node', 'node1', '--lock-timeout', '2s']);
    expect(Date.now() - t0).toBeGreaterThan(2000);
    expect(waited.code).toBe(1);
    expect(waited.stderr).toMatch(
      /node1: locked by ci@runner-7 \(pid 999999, podnet apply\) since .* \(waited [23] s\).*podnet force-unlock --node node1 deadbeef-0000-4000-8000-000000000001/,
    );
    // Another id is refused; the holder's id removes it.
    expect(
      (await runPodnet(['force-unlock', '--manifest', manifest, '--lab', LAB, '--node', 'node1', 'deadbeef-0000-4000-8000-00000000ffff']))
        .code,
    ).toBe(1);
    const unlocked = await runPodnet(['force-unlock', '--manifest', manifest, '--lab', LAB, '--node', 'node1', stale.id]);
    expect(unlocked).toMatchObject({ code: 0, stdout: `node1: lock ${stale.id} removed\n` });
    ok(await runPodnet(['apply', '--manifest', manifest, '--lab', LAB, '--node', 'node1']));
    // A lease that ran out is simply taken over.
    await plant(JSON.stringify({ ...stale, since: now - 1000, expires: now - 100 }));
    ok(await runPodnet(['apply', '--manifest', manifest, '--lab', LAB, '--node', 'node1']));
    // Garbage: refused with a clear message, the host untouched, removable by the id the message gives.
    await plant('garbage');
    const pid = await agentPid('node1');
    const refused = await runPodnet([
      'apply',
      '--manifest',
      manifestWith('mtu1300', (n) => ({ ...n, mtu: 1300 })),
      '--lab',
      LAB,
      '--node',
      'node1',
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/node1: \/run\/podnet\/cluster\.lock is not a podnet lock \(unreadable\)/);
    expect(await agentPid('node1')).toBe(pid);
    const id = /force-unlock --node node1 ([0-9a-f]{16})/.exec(refused.stderr)![1]!;
    expect((await runPodnet(['force-unlock', '--manifest', manifest, '--lab', LAB, '--node', 'node1', id])).code).toBe(0);
    expect((await runPodnet(['drift', '--manifest', manifest, '--lab', LAB])).code).toBe(0);
  });

  it('an apply cut between writing the files and the restart is finished by the next apply (and drift sees it)', async () => {
    const mtu1300 = manifestWith('mtu1300', (n) => ({ ...n, mtu: 1300 }));
    const oldConfig = (await labExec(LAB, 'node1', ['cat', '/etc/podnet/cluster.json'])).stdout;
    ok(await runPodnet(['apply', '--manifest', mtu1300, '--lab', LAB, '--node', 'node1']));
    const newConfig = (await labExec(LAB, 'node1', ['cat', '/etc/podnet/cluster.json'])).stdout;
    // What the cut leaves: the new config on disk, the agent still running the old one.
    const put = (text: string) => labExec(LAB, 'node1', ['sh', '-c', `printf '%s' '${text}' > /etc/podnet/cluster.json`]);
    await put(oldConfig);
    await labExec(LAB, 'node1', ['systemctl', 'restart', 'podnet-cluster.service']);
    await new Promise((r) => setTimeout(r, 1500));
    await put(newConfig);
    const drift = await runPodnet(['drift', '--manifest', mtu1300, '--lab', LAB, '--node', 'node1', '--json']);
    expect(drift.code).toBe(2);
    expect(drift.stdout).toContain('"kind": "agent-stale"');
    const plan = await runPodnet(['plan', '--manifest', mtu1300, '--lab', LAB, '--node', 'node1']);
    expect(plan.stdout).toMatch(/~ restart agent \(the running agent loaded config [0-9a-f]{16}, the installed one is [0-9a-f]{16}\)/);
    ok(await runPodnet(['apply', '--manifest', mtu1300, '--lab', LAB, '--node', 'node1']));
    expect((await labExec(LAB, 'node1', ['ip', 'link', 'show', 'flannel.ipip'])).stdout).toContain('mtu 1300');
    expect((await runPodnet(['drift', '--manifest', mtu1300, '--lab', LAB, '--node', 'node1'])).code).toBe(0);
    ok(await runPodnet(['apply', '--manifest', manifest, '--lab', LAB, '--node', 'node1']));
  });

  it('node3 added, then removed (first while unreachable): the removing deploy tears node3 down and the others drop its routes', async () => {
    const added = await deploy({ ...props, nodes: [...nodes3, node3] });
    ok(added);
    expect((await labExec(LAB, 'node1', ['ip', '-4', 'route'])).stdout).toContain('10.244.3.0/24 via 192.168.0.83');
    await podAdd(LAB, 'node3', 'web');
    expect((await podExec(LAB, 'node3', 'web', ['ping', '-c', '2', '-W', '2', '10.244.1.2'])).stdout).toContain('2 received');

    // node3 unreachable when it is removed: its teardown fails, saying so, and the others converge.
    await labExec(LAB, 'node3', ['systemctl', 'stop', 'ssh.service', 'ssh.socket']);
    let unreachable: CommandResult & { podnet: string[] };
    try {
      unreachable = await deploy({ ...props, nodes: nodes3 });
    } finally {
      await labExec(LAB, 'node3', ['systemctl', 'start', 'ssh.service']);
    }
    expect(unreachable.code).not.toBe(0);
    expect(`${unreachable.stdout}${unreachable.stderr}`).toMatch(/node3.*the next cdktf deploy \(or cdktf destroy\) tries again/s);
    for (const h of ['master', 'node1', 'node2'])
      expect((await labExec(LAB, h, ['ip', '-4', 'route'])).stdout).not.toContain('10.244.3.0/24');
    expect((await labExec(LAB, 'node3', ['systemctl', 'is-active', 'podnet-cluster.service'])).stdout.trim()).toBe('active');

    // Reachable again: the next deploy finishes the removal.
    const removed = await deploy({ ...props, nodes: nodes3 });
    ok(removed);
    expect(removed.stdout).toMatch(/0 added, 0 changed, 1 destroyed/);
    expect(removed.podnet).toEqual([expect.stringMatching(/^destroy --network cluster --node node3 --address 192\.168\.0\.83 /)]);
    await podDel(LAB, 'node3', 'web'); // made by CNI, not podnet: a kubelet would remove it
    expect(await hostSnapshot(LAB, 'node3')).toBe(before.get('node3'));
    expect((await runPodnet(['drift', '--manifest', manifest, '--lab', LAB])).code).toBe(0);
  });

  it('cdktf destroy leaves every host byte-clean', async () => {
    writeFileSync(calls, '');
    const t0 = Date.now();
    const r = await inWorkstation([cdktfBin, 'destroy', 'reference', '--auto-approve'], project);
    process.stderr.write(`[terraform.test] cdktf destroy: ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    ok(r);
    expect(readFileSync(calls, 'utf8').split('\n').filter(Boolean)).toHaveLength(3);
    for (const h of ['node1', 'node2']) await podDel(LAB, h, 'web');
    for (const h of ['master', 'node1', 'node2', 'node3'])
      expect({ h, snap: await hostSnapshot(LAB, h) }).toEqual({ h, snap: before.get(h) });
    expect(existsSync(join(project, 'terraform.reference.tfstate'))).toBe(true);
  });

  it("never adds a lab route to the machine's own namespace", () => {
    expect(rootRoutes().filter((r) => /^(192\.168\.0\.|10\.244\.)/.test(r))).toEqual([]);
  });
});
