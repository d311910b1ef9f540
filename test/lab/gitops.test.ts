// The GitOps example (examples/gitops) as its pipeline runs it: pipeline.sh's steps in the
// order the workflow runs them (plan on a PR, deploy on merge, drift on a schedule), with the
// real cdktf CLI and terraform, a real PostgreSQL state backend (Debian's postgresql, started
// here on a unix socket and removed after) and real lab hosts, from the lab's workstation.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labExec, readLab } from '../../src/lab';
import { DRIFT_SCHEMA } from '../../src/views/json';
import { describeUnless, hostSnapshot, requireLabOrSkip, testLabName, withLab } from './lab-support';
import { podnetBin, projectRoot, runShell } from './engine-support';
import type { CommandResult } from '../../src/host/command-result';

const LAB = testLabName('pntfgo');
jest.setTimeout(240_000);

const example = join(projectRoot, 'examples', 'gitops');
const hosts = ['master', 'node1', 'node2'];

/** Debian's PostgreSQL server binaries (initdb, pg_ctl), newest version first. */
function postgresBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const version = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a))[0];
  return version ? join(root, version, 'bin') : undefined;
}

function skipReason(): string | undefined {
  const lab = requireLabOrSkip();
  if (lab) return lab;
  try {
    execFileSync('terraform', ['version'], { stdio: 'pipe', env: { ...process.env, CHECKPOINT_DISABLE: '1' } });
  } catch {
    return 'terraform is not on PATH (install terraform >= 1.4)';
  }
  if (!postgresBin()) return "PostgreSQL's server is not installed (apt-get install postgresql)";
  return undefined;
}

describeUnless(skipReason(), 'terraform', 'the GitOps example: pipeline steps with a PostgreSQL state backend', () => {
  withLab(LAB, { hosts: 3 });
  const work = mkdtempSync(join(tmpdir(), 'podnet-gitops-'));
  const pg = join(work, 'pg');
  const calls = join(work, 'podnet-calls.log');
  const before = new Map<string, string>();
  let env: NodeJS.ProcessEnv = {};

  /** As the postgres user (initdb and the server refuse root). */
  function asPostgres(cmd: string): string {
    return execFileSync('su', ['postgres', '-s', '/bin/sh', '-c', cmd], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
  }
  const pgCtl = (action: string) => asPostgres(`${postgresBin()}/pg_ctl -D ${pg}/data -l ${pg}/log -w ${action}`);

  /** One pipeline step, as the CI runner runs it, from the lab's workstation namespace. */
  function step(
    name: 'plan' | 'deploy' | 'drift',
    opts: { out?: string; slow?: number } = {},
  ): Promise<CommandResult & { podnet: string[] }> {
    writeFileSync(calls, '');
    const stepEnv = { ...env, CDKTF_OUT: opts.out ?? join(work, 'cdktf.out'), PODNET_TEST_SLOW: String(opts.slow ?? 0) };
    return runShell('ip', ['netns', 'exec', readLab(LAB)!.workstation.netns, join(example, 'pipeline.sh'), name], {
      cwd: example,
      env: stepEnv,
      timeoutMs: 200_000,
    }).then((r) => ({ ...r, podnet: readFileSync(calls, 'utf8').split('\n').filter(Boolean) }));
  }
  const show = (r: CommandResult) => ({ code: r.code, out: r.code === 0 ? '' : `${r.stdout}\n${r.stderr}` });

  beforeAll(() => {
    // PostgreSQL on a unix socket only (no TCP listener), in a directory of its own.
    chmodSync(work, 0o711); // mkdtemp's 0700 would keep the postgres user out of its own directory
    mkdirSync(join(pg, 'sock'), { recursive: true });
    execFileSync('chown', ['-R', 'postgres', pg]);
    asPostgres(`${postgresBin()}/initdb -D ${pg}/data -A trust -U postgres >/dev/null`);
    pgCtl(`-o "-k ${pg}/sock -c listen_addresses=''" start`);
    asPostgres(`${postgresBin()}/createdb -h ${pg}/sock tfstate`);

    const info = readLab(LAB)!;
    const ssh = join(work, 'runner-ssh');
    mkdirSync(ssh, { mode: 0o700 });
    copyFileSync(info.sshKeyPath, join(ssh, 'id_ed25519'));
    chmodSync(join(ssh, 'id_ed25519'), 0o600);
    copyFileSync(info.knownHostsPath, join(ssh, 'known_hosts'));
    mkdirSync(join(work, 'bin'));
    writeFileSync(
      join(work, 'bin', 'podnet'),
      `#!/bin/sh\nprintf '%s\\n' "$*" >> ${calls}\nsleep "\${PODNET_TEST_SLOW:-0}"\nexec ${process.execPath} ${podnetBin} "$@"\n`,
      { mode: 0o755 },
    );
    env = {
      ...process.env,
      PATH: `${join(work, 'bin')}:${process.env.PATH}`,
      PG_CONN_STR: `postgres://postgres@/tfstate?host=${pg}/sock&sslmode=disable`,
      PODNET_SSH_KEY: join(ssh, 'id_ed25519'),
      PODNET_KNOWN_HOSTS: join(ssh, 'known_hosts'),
      ARTIFACTS: join(work, 'artifacts'),
      TF_CLI_CONFIG_FILE: '/dev/null',
      CI: '1',
      NO_COLOR: '1',
      FORCE_COLOR: '0',
    };
  }, 120_000);
  beforeAll(async () => {
    for (const h of hosts) before.set(h, await hostSnapshot(LAB, h));
  });
  afterAll(() => {
    try {
      pgCtl('-m immediate stop');
    } catch {
      // already stopped (the backend-down test) or never started
    }
    rmSync(work, { recursive: true, force: true });
  });

  it('the workflow runs exactly the pipeline steps this test runs', () => {
    const workflow = readFileSync(join(example, '.github', 'workflows', 'podnet.yml'), 'utf8');
    for (const s of ['plan', 'deploy', 'drift']) expect(workflow).toContain(`run: examples/gitops/pipeline.sh ${s}`);
    expect(workflow).toMatch(/path: artifacts\//);
  });

  it('plan (pull request): Terraform would add one instance per node, and the hosts show what they would get', async () => {
    const r = await step('plan');
    expect(show(r)).toEqual({ code: 0, out: '' });
    const report = readFileSync(join(work, 'artifacts', 'plan.txt'), 'utf8');
    expect(report).toMatch(/3 to add, 0 to change, 0 to destroy/);
    expect(report).toContain('+ route 10.244.2.0/24 via 192.168.0.82 dev flannel.ipip onlink');
    expect(r.podnet).toEqual([expect.stringMatching(/^plan --manifest /)]);
  });

  it("deploy (merge), twice at once: one deploys, the other fails on Terraform's state lock and changes nothing", async () => {
    // Two runners, each with its own checkout's output; podnet is slowed by 5 s under both, so
    // whichever takes the lock first still holds it when the other's terraform asks for it.
    const [a, b] = await Promise.all([
      step('deploy', { out: join(work, 'out-a'), slow: 5 }),
      step('deploy', { out: join(work, 'out-b'), slow: 5 }),
    ]);
    const won = [a, b].filter((r) => r.code === 0);
    const lost = [a, b].filter((r) => r.code !== 0);
    expect({
      won: won.length,
      lost: lost.map((r) => /Error acquiring the state lock/.test(`${r.stdout}${r.stderr}`) || `${r.stdout}${r.stderr}`),
    }).toEqual({ won: 1, lost: [true] });
    expect(won[0]!.stdout).toMatch(/3 added, 0 changed, 0 destroyed/);
    // The loser retried once the winner finished: nothing left to do.
    const retry = await step('deploy', { out: join(work, a.code === 0 ? 'out-b' : 'out-a') });
    expect(show(retry)).toEqual({ code: 0, out: '' });
    expect(retry.stdout).toMatch(/No changes/);
    expect(retry.podnet).toEqual([]);
  });

  it('drift (schedule): in sync, then a stopped agent is reported (exit 2) in the JSON kept as an artifact', async () => {
    const ok = await step('drift');
    expect(show(ok)).toEqual({ code: 0, out: '' });
    expect(JSON.parse(readFileSync(join(work, 'artifacts', 'drift.json'), 'utf8'))).toMatchObject({ schema: DRIFT_SCHEMA, inSync: true });
    await labExec(LAB, 'node2', ['systemctl', 'stop', 'podnet-cluster.service']);
    try {
      const drift = await step('drift');
      expect(drift.code).toBe(2);
      const report = JSON.parse(readFileSync(join(work, 'artifacts', 'drift.json'), 'utf8')) as {
        hosts: Array<{ node: string; differences: Array<{ kind: string }> }>;
      };
      expect(report.hosts.find((h) => h.node === 'node2')!.differences.map((d) => d.kind)).toContain('agent-not-running');
    } finally {
      await labExec(LAB, 'node2', ['systemctl', 'start', 'podnet-cluster.service']);
    }
  });

  it('cdktf destroy with the pg state leaves the hosts byte-clean', async () => {
    const r = await runShell(
      'ip',
      [
        'netns',
        'exec',
        readLab(LAB)!.workstation.netns,
        join(projectRoot, 'node_modules', '.bin', 'cdktf'),
        'destroy',
        'podnet',
        '--auto-approve',
        '--output',
        join(work, 'cdktf.out'),
      ],
      { cwd: example, env: { ...env, CHECKPOINT_DISABLE: '1' }, timeoutMs: 200_000 },
    );
    expect(show(r)).toEqual({ code: 0, out: '' });
    for (const h of hosts) expect({ h, snap: await hostSnapshot(LAB, h) }).toEqual({ h, snap: before.get(h) });
  });

  it('a state backend that is down: a clear error, and nothing runs on a host', async () => {
    pgCtl('-m fast stop');
    const r = await step('deploy');
    expect(r.code).not.toBe(0);
    expect(`${r.stdout}${r.stderr}`).toMatch(/postgres|connection refused|no such file/i);
    expect(r.podnet).toEqual([]);
    for (const h of hosts) expect(await hostSnapshot(LAB, h)).toBe(before.get(h));
  });
});
