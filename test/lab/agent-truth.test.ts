// The agent tells the truth (issue 15): `converged` only where traffic can flow, with the
// reason otherwise, shown by apply and drift; repairs something keeps undoing are backed off and
// counted. Two real lab hosts, the reference network's master and node1, the eBPF datapath,
// the real CLI.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { referenceApp } from '../../examples/reference-network';
import { labExec, podAdd, podExec } from '../../src/lab';
import { INSTALL_DIR, parseAgentStatus, statusPath, type AgentStatus } from '../../src/model';
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
  /** Polls the status until `ok` holds (or `ms` pass), then returns the last one read. */
  async function statusWhen(host: string, ok: (s: AgentStatus) => boolean, ms: number): Promise<AgentStatus> {
    const deadline = Date.now() + ms;
    let s = await status(host);
    while (!ok(s) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      s = await status(host);
    }
    return s;
  }

  beforeAll(async () => {
    const outdir = join(work, 'cdktf.out');
    referenceApp({ outdir, lab: LAB, nodes: [{ name: 'master', address: '192.168.0.80' }, { name: 'node1', address: '192.168.0.81' }] }).synth();
    manifest = join(outdir, 'stacks', 'reference', 'assets', 'podnet-cluster', 'manifest.json');
    const apply = await runPodnet(['apply', '--manifest', manifest, '--lab', LAB]);
    if (apply.code !== 0) throw new Error(`apply failed: ${apply.stdout}${apply.stderr}`);
    await podAdd(LAB, 'master', 'web');
    await podAdd(LAB, 'node1', 'web');
  }, 300_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('a failed BPF attach stays degraded through later events; apply and drift say why; fixed, it converges and carries traffic', async () => {
    // Inside the agent's own mount namespace only, the loader fails at attach (as with a map
    // layout changed by an upgrade); every other command works, and the files on the host,
    // which drift and apply hash, stay podnet's own.
    const pid = (await sh('node1', `systemctl show -p MainPID --value ${UNIT}`)).trim();
    await sh('node1', [
      `cp ${LOADER} /run/pnown-bpf-real`,
      `printf '%s\\n' '#!/bin/sh' 'case " $* " in *" attach "*) echo "podnet-bpf: injected attach failure" >&2; exit 1;; esac' 'exec /run/pnown-bpf-real "$@"' > /run/pnown-bpf-wrapper`,
      'chmod 755 /run/pnown-bpf-wrapper',
      `nsenter -t ${pid} -m mount --bind /run/pnown-bpf-wrapper ${LOADER}`,
      // A tc event: a full pass, whose attach now fails (and the egress program is gone).
      'tc filter del dev flannel.ipip egress',
    ].join(' && '));
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
      const node1 = (JSON.parse(drift.stdout) as { hosts: { node: string; differences: { kind: string; actual?: string }[] }[] }).hosts.find((h) => h.node === 'node1')!;
      expect(node1.differences).toEqual([expect.objectContaining({ kind: 'agent-degraded', actual: expect.stringContaining('injected attach failure') })]);

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
});
