// The agent's status file is the engine-agent contract apply and drift rest on: what the
// agent's writer produces must be what the engine's parser and its host-side converge wait read.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convergeWaitScript } from '../../../src/engine/apply';
import {
  AGENT_STATUS_SCHEMA,
  configHashOf,
  isConvergedOn,
  parseAgentStatus,
  serializeAgentStatus,
  statusFieldText,
  type AgentStatus,
} from '../../../src/model';

function status(patch: Partial<AgentStatus> = {}): AgentStatus {
  return {
    schema: AGENT_STATUS_SCHEMA,
    version: '0.1.0',
    build: 'b1',
    network: 'cluster',
    node: 'node1',
    pid: 42,
    configHash: 'abc123',
    state: 'converged',
    datapath: 'ebpf',
    passedOver: { kernel: 'no ipip module' },
    peers: [{ node: 'node2', address: '192.168.0.82', podCidr: '10.244.2.0/24', tunnelled: true }],
    // Nested keys that look like the matched ones must not fool the wait.
    counters: { peers: [{ node: 'node2', txPackets: 1, txBytes: 2, rxPackets: 3, rxBytes: 4 }], dropped: 0 },
    repairs: 0,
    remaining: [],
    ...patch,
  };
}

describe('the agent status contract', () => {
  it('round-trips: what the agent writes, the engine parses unchanged', () => {
    const s = status({ error: 'x', lastReconcile: '2026-11-29T00:00:00.000Z' });
    const parsed = parseAgentStatus(serializeAgentStatus(s));
    expect(parsed).toEqual({ ok: true, status: s });
  });

  it('writes the matched fields at the top level, each followed by another field', () => {
    const text = serializeAgentStatus(status());
    for (const [k, v] of [
      ['state', 'converged'],
      ['configHash', 'abc123'],
      ['pid', 42],
    ] as const)
      expect(text).toContain(statusFieldText(k, v));
    expect(text).not.toContain(statusFieldText('pid', 4));
  });

  it('refuses what it cannot trust, saying why', () => {
    expect(parseAgentStatus('{')).toEqual({ ok: false, reason: 'not JSON' });
    expect(parseAgentStatus(JSON.stringify({ ...status(), schema: 'podnet.dev/agent-status/v0' }))).toMatchObject({
      ok: false,
      reason: expect.stringContaining('schema'),
    });
    expect(parseAgentStatus(JSON.stringify({ ...status(), pid: '42' }))).toEqual({ ok: false, reason: 'pid is not an integer' });
    expect(parseAgentStatus(JSON.stringify({ ...status(), state: 'repairing' }))).toMatchObject({
      ok: false,
      reason: expect.stringContaining('unknown state'),
    });
  });

  it('is converged only on this config, converged, from a process other than the replaced one', () => {
    expect(isConvergedOn(status(), 'abc123', 7)).toBe(true);
    expect(isConvergedOn(status(), 'abc123', 42)).toBe(false);
    expect(isConvergedOn(status(), 'zzz')).toBe(false);
    expect(isConvergedOn(status({ state: 'degraded' }), 'abc123')).toBe(false);
  });

  it('hashes a config text as the engine and the agent both expect', () => {
    expect(configHashOf('{}\n')).toMatch(/^[0-9a-f]{16}$/);
    expect(configHashOf('a')).not.toBe(configHashOf('b'));
  });
});

describe.each(['sh', 'bash'])('convergeWaitScript, run by %s here, on a status file the agent writer produced', (shell) => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'podnet-wait-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const wait = (path: string, oldPid: number | undefined, timeoutS: number) => {
    try {
      return {
        code: 0,
        out: execFileSync(shell, ['-s'], { input: convergeWaitScript(path, 'abc123', oldPid, timeoutS), encoding: 'utf8' }),
      };
    } catch (err) {
      const e = err as { status: number; stdout: string };
      return { code: e.status, out: e.stdout };
    }
  };

  it('returns the status once it shows the config converged from a new process', () => {
    const path = join(dir, 'ok.json');
    writeFileSync(path, serializeAgentStatus(status()));
    const r = wait(path, 7, 2);
    expect(r.code).toBe(0);
    expect(parseAgentStatus(r.out)).toMatchObject({ ok: true, status: { pid: 42, state: 'converged' } });
  });

  it('keeps waiting on the old process, another config, a degraded agent or a pid that only starts alike, then gives up with the last status', () => {
    for (const [name, s, oldPid] of [
      ['old-pid', status({ pid: 7 }), 7],
      ['old-config', status({ configHash: 'zzz' }), 7],
      ['degraded', status({ state: 'degraded' }), undefined],
      ['prefix-pid', status({ pid: 4 }), 4],
    ] as const) {
      const path = join(dir, `${name}.json`);
      writeFileSync(path, serializeAgentStatus(s));
      const t0 = Date.now();
      const r = wait(path, oldPid, 0.3);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(180); // three looks, 0.1 s apart: it napped, it did not spin
      expect(r.code).toBe(3);
      expect(parseAgentStatus(r.out)).toEqual({ ok: true, status: s });
    }
  });

  it('tells pid 42 from pid 4 (the old process) and returns', () => {
    const path = join(dir, 'pid42.json');
    writeFileSync(path, serializeAgentStatus(status({ pid: 42 })));
    expect(wait(path, 4, 1).code).toBe(0);
  });
});
