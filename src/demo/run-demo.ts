// `npm run demo`: podnet's whole job on the local lab, one step per line, ending with what
// it proved. Everything runs in the lab's namespaces; the lab is taken down at the end,
// also when a step fails.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { referenceApp } from '../../examples/reference-network';
import type { CommandResult } from '../host/command-result';
import { labDown, labExec, labUnavailableReason, labUp, podAdd, podExec, readLab } from '../lab';
import { AGENT_BUNDLE_PATH, CONFIG_DIR, INSTALL_DIR, RUNTIME_PATH } from '../model';

const LAB = process.env.PODNET_DEMO_LAB ?? 'demo';
const root = join(__dirname, '..', '..');
const proofs: string[] = [];
let stepNo = 0;

function step(title: string): void {
  stepNo += 1;
  process.stdout.write(`\n\x1b[1m[${stepNo}] ${title}\x1b[0m\n`);
}
function ok(line: string, proof?: string): void {
  process.stdout.write(`    ok: ${line}\n`);
  if (proof) proofs.push(proof);
}
function show(text: string): void {
  for (const line of text.trimEnd().split('\n')) process.stdout.write(`    | ${line}\n`);
}

function sh(file: string, args: string[], opts: { cwd?: string; passStderr?: boolean } = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { cwd: opts.cwd ?? root, maxBuffer: 16 << 20, timeout: 180_000 }, (err, stdout, stderr) => {
      resolve({
        code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0,
        stdout: String(stdout),
        stderr: String(stderr),
      });
    });
    // The CLI's per-host progress lines go to stderr: show them live.
    if (opts.passStderr) child.stderr?.on('data', (d: Buffer) => process.stdout.write(String(d).replace(/^(?=.)/gm, '    > ')));
  });
}
const podnet = (args: string[], passStderr = false) => sh(process.execPath, [join(root, 'bin', 'podnet'), ...args], { passStderr });

function expectCode(what: string, result: CommandResult, code: number): void {
  if (result.code !== code) {
    show(result.stdout + result.stderr);
    throw new Error(`${what}: exit ${result.code}, expected ${code}`);
  }
}

async function main(): Promise<number> {
  const unavailable = labUnavailableReason();
  if (unavailable) {
    process.stderr.write(`the demo needs the lab, which cannot run here: ${unavailable}\n`);
    return 1;
  }
  const work = mkdtempSync(join(tmpdir(), 'podnet-demo-'));
  const started = Date.now();
  try {
    step(`Boot the lab '${LAB}': 3 Debian hosts (systemd, sshd) on a bridged underlay, plus a workstation namespace`);
    if (readLab(LAB)) await labDown(LAB);
    const info = await labUp({ name: LAB, hosts: 3, log: (l) => process.stdout.write(`    > ${l}\n`) });
    ok(`${info.hosts.map((h) => `${h.name} ${h.address}`).join(', ')}; podnet talks to them from ${info.workstation.netns}`);

    step('Synthesize the reference network with CDKTF (examples/reference-network.ts)');
    const outdir = join(work, 'cdktf.out');
    referenceApp({ outdir, lab: LAB }).synth();
    const stackDir = join(outdir, 'stacks', 'reference');
    const manifest = join(stackDir, 'assets', 'podnet-cluster', 'manifest.json');
    ok(`cdk.tf.json with one terraform_data instance per node, manifest ${manifest}`);
    const offline = await podnet(['plan', '--offline', '--manifest', manifest, '--node', 'node1']);
    show(offline.stdout.split('\n').slice(2, 12).join('\n'));

    step('Plan against the live hosts');
    const plan = await podnet(['plan', '--manifest', manifest, '--lab', LAB, '--detailed-exitcode']);
    expectCode('plan', plan, 2);
    show(
      plan.stdout
        .split('\n')
        .filter((l) => l.startsWith('#') || l.includes('route') || l.startsWith('plan:'))
        .join('\n'),
    );
    ok('plan shows the agent, unit and routes to install (exit 2: changes pending)');

    step(
      "Apply: ship the agent over SSH (it runs on the host's Node.js, or podnet ships one), start it under systemd, wait for convergence",
    );
    const t0 = Date.now();
    const apply = await podnet(['apply', '--manifest', manifest, '--lab', LAB], true);
    expectCode('apply', apply, 0);
    ok(
      `${apply.stdout.trim()} in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
      'apply installs and starts the agent on every host over SSH',
    );
    const route = await labExec(LAB, 'node1', ['ip', '-4', 'route']);
    show(route.stdout);
    const status = await labExec(LAB, 'node1', [RUNTIME_PATH, AGENT_BUNDLE_PATH, 'status', '--network', 'cluster']);
    show(status.stdout);

    step('Create a pod on each host through the CNI config podnet installed (/etc/cni/net.d: bridge, host-local, portmap)');
    const pods = [];
    for (const h of ['master', 'node1', 'node2']) pods.push(`${h}/web ${(await podAdd(LAB, h, 'web')).ip}`);
    ok(pods.join(', '));

    step('Ping pod to pod across nodes, and watch the IPIP packets on the underlay switch');
    const capture = sh('ip', ['netns', 'exec', `${LAB}-sw`, 'timeout', '6', 'tcpdump', '-ni', 'h1', '-c', '2', 'ip proto 4']);
    await new Promise((r) => setTimeout(r, 700));
    const ping = await podExec(LAB, 'node1', 'web', ['ping', '-c', '3', '-W', '2', '10.244.2.2']);
    show(
      ping.stdout
        .split('\n')
        .filter((l) => /received|rtt/.test(l))
        .join('\n'),
    );
    if (!ping.stdout.includes(' 0% packet loss')) throw new Error('pod-to-pod ping lost packets');
    const captured = (await capture).stdout;
    show(
      captured
        .split('\n')
        .filter((l) => l.includes('IP 192'))
        .join('\n'),
    );
    const ping2 = await podExec(LAB, 'master', 'web', ['ping', '-c', '2', '-W', '2', '10.244.1.2']);
    if (!ping2.stdout.includes(' 0% packet loss')) throw new Error('master -> node1 pod ping lost packets');
    ok(
      '10.244.1.2 -> 10.244.2.2 and 10.244.0.2 -> 10.244.1.2, 0% loss, carried as IP-in-IP',
      'pods on different nodes reach each other through IPIP (tcpdump: outer 192.168.0.81 > 192.168.0.82, protocol 4)',
    );

    step('Drift check: everything as declared');
    const drift = await podnet(['drift', '--manifest', manifest, '--lab', LAB]);
    expectCode('drift', drift, 0);
    show(drift.stdout);
    ok('podnet drift exits 0', 'drift reports in sync (exit 0) after apply');

    step('Break it: delete a route on node1 by hand; the agent puts it back');
    const repair = await labExec(LAB, 'node1', [
      'sh',
      '-c',
      'ip route del 10.244.2.0/24; t0=$(date +%s%N); for i in $(seq 100); do ip route show 10.244.2.0/24 | grep -q via && { echo $(( ($(date +%s%N) - t0) / 1000000 )); exit 0; }; sleep 0.01; done; exit 1',
    ]);
    expectCode('route repair', repair, 0);
    ok(
      `route 10.244.2.0/24 restored after ${repair.stdout.trim()} ms`,
      `the agent repaired a hand-deleted route in ${repair.stdout.trim()} ms`,
    );

    step("Break it harder: stop node2's agent by hand; drift catches it");
    await labExec(LAB, 'node2', ['systemctl', 'stop', 'podnet-cluster.service']);
    const drift2 = await podnet(['drift', '--manifest', manifest, '--lab', LAB]);
    expectCode('drift after stop', drift2, 2);
    show(
      drift2.stdout
        .split('\n')
        .filter((l) => l.startsWith('node2') || l.startsWith('  ') || l.startsWith('network'))
        .join('\n'),
    );
    ok('podnet drift exits 2 and names agent-not-running on node2', 'drift catches a stopped agent (exit 2)');

    step('Repair with apply');
    const apply2 = await podnet(['apply', '--manifest', manifest, '--lab', LAB], true);
    expectCode('re-apply', apply2, 0);
    expectCode('drift after repair', await podnet(['drift', '--manifest', manifest, '--lab', LAB]), 0);
    ok('apply restarted the agent; drift is clean again', 'apply repairs drift by restarting only what was broken');

    step('Destroy: the agent tears down its device, routes, bridge and rules; podnet removes its files');
    const destroy = await podnet(['destroy', '--manifest', manifest, '--lab', LAB]);
    expectCode('destroy', destroy, 0);
    show(destroy.stdout);
    const after = await labExec(LAB, 'node1', ['sh', '-c', `ip -4 route; ls ${CONFIG_DIR} ${INSTALL_DIR} 2>&1 | head -2`]);
    show(after.stdout);
    ok('no podnet routes, device or files left', 'destroy returns hosts to their state before apply');
    return 0;
  } catch (err) {
    process.stdout.write(`\n    FAILED: ${(err as Error).message}\n`);
    return 1;
  } finally {
    step(`Take the lab '${LAB}' down`);
    await labDown(LAB);
    rmSync(work, { recursive: true, force: true });
    ok('namespaces, mounts and hosts removed');
    process.stdout.write(
      `\n\x1b[1mWhat this demo proved (${((Date.now() - started) / 1000).toFixed(0)} s):\x1b[0m\n${proofs.map((p) => `  - ${p}`).join('\n')}\n`,
    );
  }
}

main().then((code) => process.exit(code));
