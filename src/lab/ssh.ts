// The lab's SSH material: one ed25519 client key for root on every host, and a known_hosts file
// that lists every host's own key, so clients can use strict host key checking.
import { existsSync, writeFileSync } from 'node:fs';
import { must, run } from './exec';

export async function ensureClientKey(path: string, lab: string): Promise<string> {
  if (!existsSync(path)) await must(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `podnet-lab-${lab}`, '-f', path]);
  return (await must(['ssh-keygen', '-y', '-f', path])).trim() + ` podnet-lab-${lab}\n`;
}

export function writeKnownHosts(path: string, entries: { address: string; key: string }[]): void {
  writeFileSync(path, entries.map((e) => `${e.address} ${e.key}\n`).join(''));
}

/** ssh options that podnet's own tools and the tests use to reach a lab host. */
export function sshOptions(keyPath: string, knownHostsPath: string): string[] {
  return [
    '-i',
    keyPath,
    '-o',
    `UserKnownHostsFile=${knownHostsPath}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'LogLevel=ERROR',
    '-o',
    'ConnectTimeout=3',
  ];
}

/** One login attempt from the workstation namespace; true if `true` ran on the host. */
export async function trySsh(
  wsNetns: string,
  keyPath: string,
  knownHostsPath: string,
  address: string,
): Promise<{ ok: boolean; err: string }> {
  const r = await run(['ip', 'netns', 'exec', wsNetns, 'ssh', ...sshOptions(keyPath, knownHostsPath), `root@${address}`, 'true'], {
    timeoutMs: 8000,
  });
  return { ok: r.code === 0, err: r.stderr.trim() };
}
