// The per-host lock (src/engine/host-lock.ts): its scripts run here with the local sh against
// a temp directory standing in for /run/podnet, and the messages a locked apply prints.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  acquireLockScript,
  describeHeldLock,
  lockRequest,
  parseLockFile,
  removeLockScript,
  type LockHolder,
} from '../../../src/engine/host-lock';
import { parseDuration } from '../../../src/cli/arguments';
import { RUN_DIR } from '../../../src/model';

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'podnet-lock-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Runs a lock script with `dir` in place of /run/podnet. */
function run(script: string): { code: number | null; head: string; body: string } {
  const r = spawnSync('sh', ['-c', script.split(RUN_DIR).join(dir)], { encoding: 'utf8' });
  const [head = '', ...rest] = r.stdout.split('\n');
  return { code: r.status, head, body: rest.join('\n').trim() };
}
const lockFile = () => join(dir, 'cluster.lock');

describe('host lock scripts', () => {
  it('takes a free lock, and a second taker gets the holder back (exit 75) until the first releases it', () => {
    const a = lockRequest('apply');
    const got = run(acquireLockScript('cluster', a));
    expect(got.code).toBe(0);
    expect(got.head).toBe('acquired');
    const holder = parseLockFile(got.body, '');
    expect(holder).toMatchObject({ kind: 'held', holder: { id: a.id, operation: 'apply', pid: process.pid } });
    const h = (holder as { holder: LockHolder }).holder;
    expect(h.expires - h.since).toBe(900);

    const b = lockRequest('destroy');
    const refused = run(acquireLockScript('cluster', b));
    expect(refused.code).toBe(75);
    expect(refused.head).toMatch(/^held [0-9a-f]{16}$/);
    expect(parseLockFile(refused.body, '')).toMatchObject({ kind: 'held', holder: { id: a.id } });

    expect(run(removeLockScript('cluster', b.id)).code).toBe(75); // not b's to remove
    expect(run(removeLockScript('cluster', a.id)).code).toBe(0);
    expect(existsSync(lockFile())).toBe(false);
    expect(run(acquireLockScript('cluster', b)).code).toBe(0);
    expect(run(removeLockScript('cluster', b.id)).code).toBe(0);
    expect(run(removeLockScript('cluster', b.id)).code).toBe(3); // nothing left
  });

  it('replaces a lock whose lease expired (a killed apply), and leaves no temp file', () => {
    expect(run(acquireLockScript('cluster', lockRequest('apply'), 0)).code).toBe(0);
    const next = lockRequest('apply');
    expect(run(acquireLockScript('cluster', next)).code).toBe(0);
    expect(readFileSync(lockFile(), 'utf8')).toContain(`"id":"${next.id}"`);
    expect(spawnSync('ls', ['-A', dir], { encoding: 'utf8' }).stdout.trim()).toBe('cluster.lock');
  });

  it('treats a lock file with garbage in it as held by someone unknown, removable by its hash', () => {
    writeFileSync(lockFile(), 'garbage\x00{not json');
    const refused = run(acquireLockScript('cluster', lockRequest('apply')));
    expect(refused.code).toBe(75);
    const lock = parseLockFile(refused.body, refused.head.replace('held ', ''));
    expect(lock.kind).toBe('unreadable');
    expect(describeHeldLock('node1', 'cluster', lock, 0)).toMatch(
      /^node1: \/run\/podnet\/cluster\.lock is not a podnet lock \(unreadable\); .*podnet force-unlock --node node1 [0-9a-f]{16}$/,
    );
    expect(run(removeLockScript('cluster', (lock as { id: string }).id)).code).toBe(0);
    expect(existsSync(lockFile())).toBe(false);
  });
});

describe('host lock messages and options', () => {
  it('names the holder, since when, how to wait and how to unlock', () => {
    const holder: LockHolder = {
      id: 'b5f0c3e2-1111-4222-8333-944455556666',
      user: 'ci',
      workstation: 'runner-7',
      pid: 4242,
      operation: 'apply',
      since: 1_796_000_000,
      expires: 1_796_000_900,
    };
    expect(describeHeldLock('node1', 'cluster', { kind: 'held', holder }, 5)).toBe(
      'node1: locked by ci@runner-7 (pid 4242, podnet apply) since 2026-11-30T00:53:20Z (waited 5 s); wait for it (--lock-timeout), or, if that podnet is gone, run: ' +
        'podnet force-unlock --node node1 b5f0c3e2-1111-4222-8333-944455556666 (the lock expires by itself at 2026-11-30T01:08:20Z)',
    );
  });

  it('reads --lock-timeout as terraform does', () => {
    expect(parseDuration('0s', '--lock-timeout')).toBe(0);
    expect(parseDuration('30s', '--lock-timeout')).toBe(30_000);
    expect(parseDuration('5m', '--lock-timeout')).toBe(300_000);
    expect(parseDuration('250ms', '--lock-timeout')).toBe(250);
    expect(parseDuration('2', '--lock-timeout')).toBe(2000);
    expect(() => parseDuration('soon', '--lock-timeout')).toThrow(/--lock-timeout "soon": not a duration/);
  });
});
