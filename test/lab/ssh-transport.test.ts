// The SSH transport against real sshd on real lab hosts (lab 'sshtest', 3 Debian hosts).
//
// How connections are made from the workstation namespace: lab hosts must only be reached from
// the lab's workstation netns, never from the machine's own namespace. podnet itself is run that
// way (`ip netns exec podnet-ws podnet apply ...`), so the test does the same: beforeAll bundles
// src/ssh with esbuild into one CommonJS file in a temp dir, plus a ~20-line driver. Each case
// passes a function to `inWs(fn, args)`; its source (fn.toString(), already plain JS after the
// jest transform) and JSON args go over stdin to `ip netns exec sshtest-ws node driver.js`, which
// runs it with the bundled module as `ssh` and prints the JSON result or the SshError
// (kind, message, details). So the real code, TCP connect included, runs in the workstation
// netns, while the assertions stay here. Functions given to inWs must not use anything from
// this file's scope: only their parameters and require().
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync, copyFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { labDown, labExec, labUnavailableReason, labUp, readLab, type LabInfo } from '../../src/lab';
import { run } from '../../src/lab/exec';
import { writeFilesScript } from '../../src/engine/file-batch';
import { testLabName } from './lab-support';

type Ssh = typeof import('../../src/ssh');
type Outcome =
  { ok: true; value: unknown } | { ok: false; error: { name: string; kind?: string; message: string; details?: Record<string, unknown> } };

const LAB = testLabName('sshtest');
const ROOT = resolve(__dirname, '../..');
const why = labUnavailableReason();
if (why) {
  // eslint-disable-next-line no-console
  console.warn(`skipping the SSH transport lab tests: ${why}`);
}
const labDescribe = why ? describe.skip : describe;

let work: string;
let lab: LabInfo;
const DRIVER = `
const ssh = require('./ssh.js');
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', async () => {
  const { src, args } = JSON.parse(input);
  let out;
  try {
    const fn = eval('(' + src + ')');
    out = { ok: true, value: await fn(ssh, args) };
  } catch (e) {
    const details = e && e.details ? { ...e.details, cause: undefined } : undefined;
    out = { ok: false, error: { name: e && e.name, kind: e && e.kind, message: String(e && e.message), details } };
  }
  process.stdout.write('\\n@@RESULT@@' + JSON.stringify(out === undefined ? null : out) + '\\n');
  process.exit(0);
});
`;

/** Runs fn(ssh, args) in a node process inside the lab's workstation netns. */
async function inWsOutcome<A, R>(fn: (ssh: Ssh, args: A) => Promise<R>, args: A, timeoutMs = 120_000): Promise<Outcome> {
  return new Promise<Outcome>((resolveP, reject) => {
    const child = spawn('ip', ['netns', 'exec', lab.workstation.netns, process.execPath, join(work, 'driver.js')], {
      cwd: work,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH, HOME: work }, // no SSH_AUTH_SOCK, a HOME without keys
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const i = out.lastIndexOf('@@RESULT@@');
      if (i < 0) return reject(new Error(`driver exited ${code} without a result\nstdout: ${out}\nstderr: ${err}`));
      resolveP(JSON.parse(out.slice(i + '@@RESULT@@'.length)) as Outcome);
    });
    child.stdin.end(JSON.stringify({ src: fn.toString(), args }));
  });
}

async function inWs<A, R>(fn: (ssh: Ssh, args: A) => Promise<R>, args: A, timeoutMs?: number): Promise<R> {
  const o = await inWsOutcome(fn, args, timeoutMs);
  if (!o.ok) throw new Error(`in workstation: ${o.error.kind ?? o.error.name}: ${o.error.message}`);
  return o.value as R;
}

async function inWsError<A>(
  fn: (ssh: Ssh, args: A) => Promise<unknown>,
  args: A,
): Promise<{ kind?: string; message: string; details?: Record<string, unknown> }> {
  const o = await inWsOutcome(fn, args);
  if (o.ok) throw new Error(`expected a failure, got ${JSON.stringify(o.value)}`);
  return o.error;
}

async function onHost(host: string, script: string, input?: string): Promise<string> {
  const r = await labExec(LAB, host, ['sh', '-c', script], input !== undefined ? { input } : {});
  if (r.code !== 0) throw new Error(`on ${host}: ${script}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Targets for the lab hosts, as plain data the driver can take. */
function targets(over: Record<string, unknown> = {}): Array<Record<string, unknown>> {
  return lab.hosts.map((h) => ({
    host: h.address,
    label: h.name,
    privateKeyPath: lab.sshKeyPath,
    useAgent: false,
    knownHostsPath: lab.knownHostsPath,
    connectTimeoutMs: 8000,
    ...over,
  }));
}

const hostFingerprint = async (host: string): Promise<string> =>
  (await onHost(host, 'ssh-keygen -l -E sha256 -f /etc/ssh/ssh_host_ed25519_key.pub')).split(/\s+/)[1]!;

labDescribe('SSH transport on lab hosts (from the workstation netns)', () => {
  jest.setTimeout(240_000);

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'podnet-sshtest-'));
    await build({
      entryPoints: [join(ROOT, 'src/ssh/index.ts')],
      outfile: join(work, 'ssh.js'),
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      external: ['cpu-features', './crypto/build/Release/sshcrypto.node'],
      logLevel: 'warning',
    });
    writeFileSync(join(work, 'driver.js'), DRIVER);
    if (readLab(LAB)) await labDown(LAB); // leftovers of an interrupted run of this file
    lab = await labUp({ name: LAB, hosts: 3 });
  }, 600_000);

  afterAll(async () => {
    try {
      if (readLab(LAB)) await labDown(LAB);
    } finally {
      if (work) rmSync(work, { recursive: true, force: true });
    }
  }, 120_000);

  it('connects strictly and runs commands on 3 hosts in parallel over one connection each', async () => {
    const r = await inWs(
      async (ssh, { ts }) => {
        const pool = new ssh.SshPool({ maxParallel: 3 });
        try {
          const t0 = Date.now();
          const results = await pool.forEachHost(ts as never[], async (conn, t) => {
            const a = await conn.exec('hostname; id -u');
            const b = await conn.exec('echo $SSH_CONNECTION');
            const again = await pool.get(t);
            return { out: a.stdout, from: b.stdout.trim().split(' ')[0], reused: again === conn };
          });
          return { ms: Date.now() - t0, results: results.map((x) => (x.ok ? x.value : { error: x.error.message })) };
        } finally {
          await pool.closeAll();
        }
      },
      { ts: targets() },
    );
    expect(r.results).toEqual(lab.hosts.map((h) => ({ out: `${h.name}\n0\n`, from: lab.workstation.address, reused: true })));
    console.log(`3 hosts connected and 2 commands each in ${r.ms} ms`);
  });

  it('refuses an unknown host key with an empty known_hosts (host-key-unknown with the fingerprint)', async () => {
    const kh = join(work, 'empty_known_hosts');
    writeFileSync(kh, '');
    const e = await inWsError(async (ssh, { t }) => ssh.SshConnection.connect(t as never), { t: { ...targets()[0], knownHostsPath: kh } });
    expect(e.kind).toBe('host-key-unknown');
    const fp = await hostFingerprint('master');
    expect(e.message).toContain(fp);
    expect(e.message).toMatch(/^master \(192\.168\.0\.80:22\): host key unknown/);
    expect(e.message).toContain('acceptNewHostKeys: true');
    expect(readFileSync(kh, 'utf8')).toBe(''); // nothing recorded without TOFU
  });

  it('reports a changed key as host-key-mismatch with both fingerprints', async () => {
    const kh = join(work, 'wrong_known_hosts');
    const lines = readFileSync(lab.knownHostsPath, 'utf8').trim().split('\n');
    const node1Key = lines
      .find((l) => l.startsWith('192.168.0.81 '))!
      .split(' ')
      .slice(1)
      .join(' ');
    writeFileSync(kh, lines.map((l) => (l.startsWith('192.168.0.80 ') ? `192.168.0.80 ${node1Key}` : l)).join('\n') + '\n');
    const e = await inWsError(async (ssh, { t }) => ssh.SshConnection.connect(t as never), {
      t: { ...targets()[0], knownHostsPath: kh, acceptNewHostKeys: true },
    });
    expect(e.kind).toBe('host-key-mismatch');
    const [master, node1] = [await hostFingerprint('master'), await hostFingerprint('node1')];
    expect(e.message).toContain(`presented ssh-ed25519 ${master}`);
    expect(e.message).toContain(`known_hosts has ssh-ed25519 ${node1}`);
    expect(e.details).toMatchObject({ presentedFingerprint: master, knownFingerprints: [node1] });
  });

  it('trusts on first use only when asked, records the key (mode 600), then connects strictly', async () => {
    const kh = join(work, 'tofu', 'known_hosts');
    const r = await inWs(
      async (ssh, { t }) => {
        const fs = require('node:fs') as typeof import('node:fs');
        const c1 = await ssh.SshConnection.connect({ ...(t as object), acceptNewHostKeys: true } as never);
        await c1.close();
        const c2 = await ssh.SshConnection.connect(t as never);
        const out = (await c2.exec('hostname')).stdout;
        await c2.close();
        return {
          out,
          file: fs.readFileSync((t as { knownHostsPath: string }).knownHostsPath, 'utf8'),
          mode: fs.statSync((t as { knownHostsPath: string }).knownHostsPath).mode & 0o777,
        };
      },
      { t: { ...targets()[1], knownHostsPath: kh } },
    );
    expect(r.out).toBe('node1\n');
    expect(r.mode).toBe(0o600);
    const hostKey = (await onHost('node1', 'cat /etc/ssh/ssh_host_ed25519_key.pub')).split(' ').slice(0, 2).join(' ');
    expect(r.file).toBe(`192.168.0.81 ${hostKey}\n`);
  });

  it('gives refused for a closed port, and timeout for a slow command (which is killed)', async () => {
    const refused = await inWsError(async (ssh, { t }) => ssh.SshConnection.connect(t as never), { t: { ...targets()[0], port: 2222 } });
    expect(refused.kind).toBe('refused');
    expect(refused.message).toBe('master (192.168.0.80:2222): connection refused on port 2222: is sshd running and listening there?');

    const r = await inWs(
      async (ssh, { t }) => {
        const c = await ssh.SshConnection.connect(t as never);
        try {
          const t0 = Date.now();
          const e = await c.exec('sleep 47', { timeoutMs: 700 }).catch((x: { kind: string; message: string }) => x);
          const ms = Date.now() - t0;
          await new Promise((r2) => setTimeout(r2, 3300)); // the host-side bound: ceil(0.7 s) + 2 s
          const ps = await c.exec("ps -eo args= | grep -x 'sleep 47' || true");
          return { kind: (e as { kind: string }).kind, message: (e as { message: string }).message, ms, sleeping: ps.stdout.trim() };
        } finally {
          await c.close();
        }
      },
      { t: targets()[0] },
    );
    expect(r.kind).toBe('timeout');
    expect(r.message).toBe('master (192.168.0.80:22): command timed out after 700 ms: sleep 47');
    expect(r.ms).toBeLessThan(3000);
    expect(r.sleeping).toBe(''); // killed on the host (root sessions ignore SSH signal requests)

    const unreachable = await inWsError(async (ssh, { t }) => ssh.SshConnection.connect(t as never), {
      t: { ...targets()[0], host: '192.168.0.99', connectTimeoutMs: 6000 },
    });
    expect(['unreachable', 'timeout']).toContain(unreachable.kind);
    console.log(`no host at 192.168.0.99: ${unreachable.kind}: ${unreachable.message}`);
  });

  it("runs commands and writes files (the engine's file batch) as a non-root user through sudo -n", async () => {
    // The lab's base image has no sudo; install the Debian package into this host when we can get it.
    const hasSudo = (await labExec(LAB, 'node1', ['sh', '-c', 'command -v sudo'])).code === 0;
    if (!hasSudo) {
      const debDir = join(work, 'debs');
      mkdirSync(debDir);
      const dl = await run(['apt-get', 'download', 'sudo'], { cwd: debDir, timeoutMs: 60_000 });
      const deb = existsSync(debDir) ? readdirSync(debDir).find((f) => f.startsWith('sudo_') && f.endsWith('.deb')) : undefined;
      if (!deb) {
        console.warn(`SKIPPED sudo case: the lab base image has no sudo and 'apt-get download sudo' failed: ${dl.stderr.trim()}`);
        return;
      }
      const host = lab.hosts.find((h) => h.name === 'node1')!;
      // Not /tmp: that is a tmpfs inside the running host.
      copyFileSync(join(debDir, deb), join(host.rootDir, 'var', 'tmp', deb));
      await onHost('node1', `dpkg -i /var/tmp/${deb} >/dev/null && rm /var/tmp/${deb}`);
    }
    const pub = readFileSync(`${lab.sshKeyPath}.pub`, 'utf8');
    await onHost(
      'node1',
      [
        'id podop >/dev/null 2>&1 || useradd -m -s /bin/sh podop',
        'install -d -o podop -m 700 /home/podop/.ssh',
        'cat > /home/podop/.ssh/authorized_keys && chown podop /home/podop/.ssh/authorized_keys',
        'echo "podop ALL=(ALL) NOPASSWD: ALL" > /etc/sudoers.d/podop && chmod 440 /etc/sudoers.d/podop',
        'mkdir -p /etc/podnet-sudo && echo old > /etc/podnet-sudo/keep',
      ].join(' && '),
      pub,
    );
    const r = await inWs(
      async (ssh, { t, clobber, write }) => {
        const asUser = await ssh.SshConnection.connect({ ...(t as object), sudo: false } as never);
        const plainId = (await asUser.exec('id -un')).stdout.trim();
        const denied = await asUser
          .exec('sh -s', { input: clobber as string })
          .catch((e: { kind: string; message: string }) => `${e.kind}: ${e.message}`);
        await asUser.close();
        const c = await ssh.SshConnection.connect({ ...(t as object), sudo: true } as never);
        try {
          const id = (await c.exec('id -u; echo "$HOME"')).stdout;
          const quoted = (await c.exec(`printf '%s|' "it's" '$HOME'`)).stdout;
          await c.exec('sh -s', { input: write as string }); // as the engine writes files (apply.ts)
          const back = (await c.exec('cat /etc/podnet-sudo/deep/cfg.json')).stdout;
          const failed = await c.exec('echo nope >&2; exit 4').catch((e: { kind: string; message: string }) => `${e.kind}: ${e.message}`);
          return { plainId, denied, id, quoted, back, failed };
        } finally {
          await c.close();
        }
      },
      {
        t: { ...targets()[1], user: 'podop' },
        clobber: writeFilesScript([{ path: '/etc/podnet-sudo/keep', content: 'clobbered', mode: 0o644 }]),
        write: writeFilesScript([{ path: '/etc/podnet-sudo/deep/cfg.json', content: '{"sudo":true}\n', mode: 0o640 }]),
      },
    );
    expect(r.plainId).toBe('podop');
    expect(r.denied).toMatch(/^command-failed: node1 \(podop@192\.168\.0\.81:22\): [^]*[Pp]ermission denied/);
    expect(r.id).toBe('0\n/root\n');
    expect(r.quoted).toBe("it's|$HOME|");
    expect(r.back).toBe('{"sudo":true}\n');
    expect(r.failed).toBe(
      'command-failed: node1 (podop@192.168.0.81:22): command failed with exit code 4: echo nope >&2; exit 4\nstderr:\nnope',
    );
    expect(
      await onHost(
        'node1',
        'cat /etc/podnet-sudo/keep; stat -c "%a %U" /etc/podnet-sudo/deep/cfg.json /etc/podnet-sudo/deep; ls -A /etc/podnet-sudo/deep',
      ),
    ).toBe('old\n640 root\n755 root\ncfg.json\n');
  });
});
