// SshConnection and SshPool against an in-process ssh2 server on 127.0.0.1 (loopback only):
// host key checks, TOFU, auth, exec, timeouts, refused, reuse and bounded parallelism. The
// server runs commands with the local sh; sudo is covered by the lab test.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, utils, type Connection } from 'ssh2';
import { SshConnection, SshError, SshPool, fingerprint, formatKnownHostsLine, type SshTarget } from '../../../src/ssh';

const hostKey = utils.generateKeyPairSync('ed25519');
const otherHostKey = utils.generateKeyPairSync('ed25519');
const clientKey = utils.generateKeyPairSync('ed25519');
const strangerKey = utils.generateKeyPairSync('ed25519');
const hostBlob = (utils.parseKey(hostKey.private) as { getPublicSSH(): Buffer }).getPublicSSH();
const otherBlob = (utils.parseKey(otherHostKey.private) as { getPublicSSH(): Buffer }).getPublicSSH();
const allowed = utils.parseKey(clientKey.public) as { getPublicSSH(): Buffer; verify(d: Buffer, s: Buffer, h?: string): boolean };

let dir: string;
let server: Server;
let port: number;
let closedPort: number;
const connections: Connection[] = [];
let sessionsOpened = 0;
let sessionsOpen = 0;
let sessionsPeak = 0;
/** Called as the server accepts a TCP connection: after the client read known_hosts, before its host key check. */
let onAccept: (() => void) | undefined;

/** The command's whole process group, as sshd's session ends take the shell's children too. */
function killGroup(child: ReturnType<typeof spawn> | undefined): void {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'podnet-sshc-'));
  writeFileSync(join(dir, 'id'), clientKey.private, { mode: 0o600 });
  writeFileSync(join(dir, 'stranger'), strangerKey.private, { mode: 0o600 });
  server = new Server({ hostKeys: [hostKey.private] }, (client) => {
    connections.push(client);
    onAccept?.();
    client.on('error', () => {});
    client.on('authentication', (ctx) => {
      if (ctx.method === 'publickey' && ctx.key.data.equals(allowed.getPublicSSH())) {
        if (!ctx.signature || allowed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo)) return ctx.accept();
      }
      ctx.reject(['publickey']);
    });
    client.on('ready', () => {
      client.on('session', (accept) => {
        sessionsOpened++;
        sessionsOpen++;
        sessionsPeak = Math.max(sessionsPeak, sessionsOpen);
        const session = accept();
        session.on('close', () => sessionsOpen--);
        let child: ReturnType<typeof spawn> | undefined;
        session.on('signal', (_a, _r, info) => {
          if (info.name === 'KILL') killGroup(child);
        });
        session.on('exec', (acc, _rej, info) => {
          const ch = acc();
          child = spawn('sh', ['-c', info.command], { stdio: 'pipe', detached: true });
          ch.pipe(child.stdin!);
          child.stdout!.pipe(ch, { end: false });
          child.stderr!.pipe(ch.stderr, { end: false });
          child.stdin!.on('error', () => {});
          ch.on('close', () => killGroup(child));
          child.on('close', (code, signal) => {
            if (signal) ch.exit(signal.replace(/^SIG/, ''), false, '');
            else ch.exit(code ?? 0);
            ch.end();
          });
        });
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  // A port with nothing listening: bind, read the number, close.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  writeFileSync(join(dir, 'known_hosts'), formatKnownHostsLine('127.0.0.1', port, hostBlob));
});

afterAll(async () => {
  for (const c of connections) c.end();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

const target = (over: Partial<SshTarget> = {}): SshTarget => ({
  host: '127.0.0.1',
  port,
  label: 'local',
  privateKeyPath: join(dir, 'id'),
  useAgent: false,
  knownHostsPath: join(dir, 'known_hosts'),
  connectTimeoutMs: 5000,
  ...over,
});

async function connectError(t: SshTarget): Promise<SshError> {
  try {
    const c = await SshConnection.connect(t);
    await c.close();
  } catch (e) {
    expect(e).toBeInstanceOf(SshError);
    return e as SshError;
  }
  throw new Error('connected, but a failure was expected');
}

describe('SshConnection (loopback ssh2 server)', () => {
  it('connects with strict host key checking and runs commands with stdin, exit codes and stderr', async () => {
    const c = await SshConnection.connect(target());
    try {
      expect(await c.exec('echo hello; echo warn >&2')).toEqual({ code: 0, stdout: 'hello\n', stderr: 'warn\n' });
      expect((await c.exec('wc -c', { input: Buffer.alloc(300_000, 1) })).stdout.trim()).toBe('300000');
      expect((await c.exec('cat')).stdout).toBe(''); // stdin closed at once: no hang
      expect(await c.exec('echo out; echo bad >&2; exit 3', { allowFailure: true })).toEqual({ code: 3, stdout: 'out\n', stderr: 'bad\n' });
      const err = await c.exec('echo bad >&2; exit 3').catch((e: SshError) => e);
      expect(err).toMatchObject({ kind: 'command-failed', details: { exitCode: 3, stderrTail: 'bad' } });
      expect((err as SshError).message).toMatch(/^local \(127\.0\.0\.1:\d+\): command failed with exit code 3: echo bad/);
    } finally {
      await c.close();
    }
  });

  it('runs many commands at once over one connection without exceeding the channel limit', async () => {
    const c = await SshConnection.connect(target());
    try {
      const before = sessionsOpened;
      sessionsPeak = 0;
      const outs = await Promise.all(Array.from({ length: 20 }, (_, i) => c.exec(`sleep 0.05; echo ${i}`)));
      expect(outs.map((o) => o.stdout.trim())).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
      expect(sessionsOpened - before).toBe(20);
      expect(sessionsPeak).toBe(8); // MAX_CHANNELS, under OpenSSH's MaxSessions 10
    } finally {
      await c.close();
    }
  });

  it('times a command out with kind timeout and kills it', async () => {
    const c = await SshConnection.connect(target());
    try {
      const t0 = Date.now();
      const err = await c.exec('sleep 30', { timeoutMs: 300 }).catch((e: SshError) => e);
      expect(err).toMatchObject({ kind: 'timeout' });
      expect((err as SshError).message).toMatch(/command timed out after 300 ms: sleep 30/);
      expect(Date.now() - t0).toBeLessThan(3000);
      expect((await c.exec('echo still-usable')).stdout).toBe('still-usable\n');
    } finally {
      await c.close();
    }
  });

  it('refuses an unknown host key unless TOFU is asked for, then records it', async () => {
    const kh = join(dir, 'kh-empty');
    const err = await connectError(target({ knownHostsPath: kh }));
    expect(err.kind).toBe('host-key-unknown');
    expect(err.message).toContain(fingerprint(hostBlob));
    const c = await SshConnection.connect(target({ knownHostsPath: kh, acceptNewHostKeys: true }));
    await c.close();
    expect(readFileSync(kh, 'utf8')).toBe(formatKnownHostsLine('127.0.0.1', port, hostBlob));
    expect(statSync(kh).mode & 0o777).toBe(0o600);
    const strict = await SshConnection.connect(target({ knownHostsPath: kh }));
    await strict.close();
  });

  it('fails a TOFU connection when another process recorded a different key for the host meanwhile', async () => {
    const kh = join(dir, 'kh-race');
    onAccept = () => writeFileSync(kh, formatKnownHostsLine('127.0.0.1', port, otherBlob));
    try {
      const err = await connectError(target({ knownHostsPath: kh, acceptNewHostKeys: true }));
      expect(err.kind).toBe('host-key-mismatch');
      expect(err.details).toMatchObject({ presentedFingerprint: fingerprint(hostBlob), knownFingerprints: [fingerprint(otherBlob)] });
    } finally {
      onAccept = undefined;
    }
    expect(readFileSync(kh, 'utf8')).toBe(formatKnownHostsLine('127.0.0.1', port, otherBlob));
  });

  it('reports a changed host key with both fingerprints, even with TOFU on', async () => {
    const kh = join(dir, 'kh-wrong');
    writeFileSync(kh, formatKnownHostsLine('127.0.0.1', port, otherBlob));
    const err = await connectError(target({ knownHostsPath: kh, acceptNewHostKeys: true }));
    expect(err.kind).toBe('host-key-mismatch');
    expect(err.message).toContain(fingerprint(hostBlob));
    expect(err.message).toContain(fingerprint(otherBlob));
    expect(readFileSync(kh, 'utf8')).toBe(formatKnownHostsLine('127.0.0.1', port, otherBlob)); // unchanged
  });

  it('reports auth-failed, refused and timeout', async () => {
    const auth = await connectError(target({ privateKeyPath: join(dir, 'stranger') }));
    expect(auth.kind).toBe('auth-failed');
    expect(auth.message).toMatch(/authentication failed for user root \(tried: private key .*stranger\)/);
    expect((await connectError(target({ privateKeyPath: join(dir, 'nope') }))).message).toMatch(/cannot read private key/);

    const refused = await connectError(target({ port: closedPort }));
    expect(refused.kind).toBe('refused');
    expect(refused.message).toBe(
      `local (127.0.0.1:${closedPort}): connection refused on port ${closedPort}: is sshd running and listening there?`,
    );

    // A TCP server that never speaks SSH: the handshake times out.
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const t0 = Date.now();
      const to = await connectError(target({ port: (silent.address() as AddressInfo).port, connectTimeoutMs: 400 }));
      expect(to.kind).toBe('timeout');
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      silent.close();
    }
  });
});

describe('SshPool', () => {
  it('reuses one connection per host, reconnects after a drop, and bounds parallelism', async () => {
    const pool = new SshPool({ maxParallel: 2 });
    try {
      const a = await pool.get(target());
      const [b, b2] = await Promise.all([pool.get(target()), pool.get(target())]);
      expect(b).toBe(a);
      expect(b2).toBe(a);
      await a.close();
      const c = await pool.get(target());
      expect(c).not.toBe(a);

      let running = 0;
      let peak = 0;
      const targets = [
        target({ label: 'n1' }),
        target({ label: 'n2' }),
        target({ label: 'bad', port: closedPort }),
        target({ label: 'n4' }),
      ];
      const results = await pool.forEachHost(targets, async (conn, t) => {
        running++;
        peak = Math.max(peak, running);
        try {
          return (await conn.exec(`sleep 0.1; echo ${t.label}`)).stdout.trim();
        } finally {
          running--;
        }
      });
      expect(peak).toBeLessThanOrEqual(2);
      expect(results.map((r) => (r.ok ? r.value : r.error.kind))).toEqual(['n1', 'n2', 'refused', 'n4']);
      const thrown = await pool.forEachHost([target()], async () => {
        throw new Error('boom');
      });
      expect(thrown[0]).toMatchObject({ ok: false, error: { kind: 'internal', message: 'local (127.0.0.1:' + port + '): boom' } });
    } finally {
      await pool.closeAll();
    }
  });
});
