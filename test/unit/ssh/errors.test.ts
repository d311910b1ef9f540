// Error messages name the host and say what to do; shell quoting survives a real sh.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SshError, commandFailed, describeTarget, tail } from '../../../src/ssh/errors';
import { HostKeyVerifier } from '../../../src/ssh/host-key-verifier';
import { fingerprint, formatKnownHostsLine } from '../../../src/ssh/known-hosts';
import { sudoWrap } from '../../../src/ssh/shell';
import { shQuote } from '../../../src/host/shell-quote';

function blob(type: string): Buffer {
  const t = Buffer.from(type);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(t.length);
  return Buffer.concat([len, t, randomBytes(32)]);
}

describe('describeTarget', () => {
  it('shows label, user (when not root), host and port', () => {
    expect(describeTarget({ host: '192.168.0.81' })).toBe('192.168.0.81:22');
    expect(describeTarget({ host: '192.168.0.81', port: 2222, label: 'node1' })).toBe('node1 (192.168.0.81:2222)');
    expect(describeTarget({ host: 'h', user: 'deploy', label: 'n' })).toBe('n (deploy@h:22)');
  });
});

describe('host key errors', () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'podnet-err-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('mismatch names both fingerprints, the file line and the fix', () => {
    const known = blob('ssh-ed25519');
    const presented = blob('ssh-ed25519');
    const file = join(dir, 'kh1');
    writeFileSync(file, '# c\n' + formatKnownHostsLine('192.168.0.81', 22, known));
    const v = new HostKeyVerifier({
      host: '192.168.0.81',
      port: 22,
      describe: 'node1 (192.168.0.81:22)',
      knownHostsPath: file,
      acceptNewHostKeys: true,
    });
    const d = v.decide(presented);
    expect(d.accept).toBe(false);
    const err = (d as { error: SshError }).error;
    expect(err).toBeInstanceOf(SshError);
    expect(err.kind).toBe('host-key-mismatch'); // TOFU never overrides a changed key
    expect(err.message).toMatch(/^node1 \(192\.168\.0\.81:22\): HOST KEY MISMATCH/);
    expect(err.message).toContain(fingerprint(presented));
    expect(err.message).toContain(fingerprint(known));
    expect(err.message).toContain(`${file}:2`);
    expect(err.message).toContain(`ssh-keygen -R '192.168.0.81' -f ${file}`);
    expect(err.details).toEqual({ presentedFingerprint: fingerprint(presented), knownFingerprints: [fingerprint(known)] });
  });

  it('unknown gives the fingerprint and both ways to trust it', () => {
    const presented = blob('ecdsa-sha2-nistp256');
    const v = new HostKeyVerifier({
      host: '192.168.0.82',
      port: 2222,
      describe: 'node2 (192.168.0.82:2222)',
      knownHostsPath: join(dir, 'absent'),
    });
    const d = v.decide(presented);
    const err = (d as { error: SshError }).error;
    expect(err.kind).toBe('host-key-unknown');
    expect(err.message).toContain(`ecdsa-sha2-nistp256 ${fingerprint(presented)}`);
    expect(err.message).toContain('ssh-keyscan -p 2222 -t ecdsa 192.168.0.82');
    expect(err.message).toContain('acceptNewHostKeys: true');
  });

  it('revoked keys are refused even with TOFU', () => {
    const k = blob('ssh-ed25519');
    const file = join(dir, 'kh2');
    writeFileSync(file, '@revoked * ' + formatKnownHostsLine('x', 22, k).split(' ').slice(1).join(' '));
    const v = new HostKeyVerifier({ host: 'h', port: 22, describe: 'h:22', knownHostsPath: file, acceptNewHostKeys: true });
    const d = v.decide(k);
    expect(d.accept).toBe(false);
    expect((d as { error: SshError }).error.message).toMatch(/marked @revoked in .*kh2:1/);
  });
});

describe('command-failed', () => {
  it('carries exit code and the stderr tail', () => {
    const stderr = Array.from({ length: 30 }, (_, i) => `line ${i}`).join('\n') + '\n';
    const e = commandFailed('node1 (h:22)', 'ip link add x type ipip', 2, stderr);
    expect(e.kind).toBe('command-failed');
    expect(e.details.exitCode).toBe(2);
    expect(e.message).toBe(`node1 (h:22): command failed with exit code 2: ip link add x type ipip\nstderr:\n${tail(stderr)}`);
    expect(e.details.stderrTail!.split('\n')).toEqual(Array.from({ length: 10 }, (_, i) => `line ${20 + i}`));
  });

  it('explains sudo problems', () => {
    expect(commandFailed('h', 'true', 1, 'sudo: a password is required\n').message).toMatch(/NOPASSWD/);
    expect(commandFailed('h', 'true', 127, 'sh: 1: sudo: not found\n').message).toMatch(/sudo is not installed/);
  });

  it('caps long stderr', () => {
    expect(tail('x'.repeat(5000)).length).toBe(2001);
  });
});

describe('shell helpers (run with the local sh)', () => {
  const sh = (cmd: string, input?: Buffer | string): { status: number; stdout: Buffer; stderr: string } => {
    try {
      const stdout = execFileSync('sh', ['-c', cmd], { input: input ?? '', stdio: ['pipe', 'pipe', 'pipe'] });
      return { status: 0, stdout, stderr: '' };
    } catch (e) {
      const x = e as { status: number; stdout: Buffer; stderr: Buffer };
      return { status: x.status, stdout: x.stdout, stderr: x.stderr.toString() };
    }
  };

  it('quotes anything', () => {
    for (const w of ['plain', '', "it's", 'a b', '$(touch /tmp/pwned)', '"\\`', 'x\ny']) {
      expect(sh(`printf %s ${shQuote(w)}`).stdout.toString()).toBe(w);
    }
    expect(sudoWrap("echo 'hi'")).toBe(`sudo -n sh -c 'echo '\\''hi'\\'''`);
  });
});
