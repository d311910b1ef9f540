// Host key policy for one connection: strict known_hosts checking by default, trust-on-first-use
// only when asked for. The decision is pure (see known-hosts.ts); this module adds the file I/O:
// reading known_hosts and recording a newly trusted key.
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { SshError } from './errors';
import {
  checkHostKey,
  fingerprint,
  formatKnownHostsLine,
  keyBlobType,
  knownHostsName,
  knownKeyTypesFor,
  parseKnownHosts,
  SUPPORTED_KEY_TYPES,
  type KnownHostsEntry,
} from './known-hosts';

export function defaultKnownHostsPath(): string {
  return join(homedir(), '.ssh', 'known_hosts');
}

/** ssh2's host key algorithms, ordered so the types known for the host come first (as OpenSSH does). */
const ALL_HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

function algorithmsForKeyType(type: string): string[] {
  return type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type];
}

export type HostKeyDecision =
  | { readonly accept: true; /** Set when the key is new and must be recorded once the handshake completes. */ readonly record?: Buffer }
  | { readonly accept: false; readonly error: SshError };

export interface HostKeyVerifierOptions {
  host: string;
  port: number;
  /** For messages, e.g. `node1 (192.168.0.81:22)`. */
  describe: string;
  knownHostsPath?: string;
  acceptNewHostKeys?: boolean;
}

export class HostKeyVerifier {
  readonly knownHostsPath: string;
  private readonly entries: KnownHostsEntry[];

  constructor(private readonly opts: HostKeyVerifierOptions) {
    this.knownHostsPath = opts.knownHostsPath ?? defaultKnownHostsPath();
    this.entries = readKnownHosts(this.knownHostsPath, opts.describe);
  }

  /** Host key algorithms to offer: known types for this host first, then the rest. */
  hostKeyAlgorithms(): string[] {
    const preferred = knownKeyTypesFor(this.entries, this.opts.host, this.opts.port).flatMap(algorithmsForKeyType);
    const first = preferred.filter((a) => ALL_HOST_KEY_ALGORITHMS.includes(a));
    return [...first, ...ALL_HOST_KEY_ALGORITHMS.filter((a) => !first.includes(a))];
  }

  /** Whether to accept the key the host presented, judged by known_hosts as read at construction. */
  decide(presented: Buffer): HostKeyDecision {
    return this.decideWith(this.entries, presented);
  }

  private decideWith(entries: readonly KnownHostsEntry[], presented: Buffer): HostKeyDecision {
    const { host, port, describe } = this.opts;
    const fp = fingerprint(presented);
    const type = keyBlobType(presented) ?? 'unknown-type';
    const check = checkHostKey(entries, host, port, presented);
    const file = this.knownHostsPath;
    switch (check.status) {
      case 'ok':
        return { accept: true };
      case 'revoked':
        return {
          accept: false,
          error: new SshError(
            'host-key-mismatch',
            describe,
            `host key ${type} ${fp} is marked @revoked in ${file}:${check.entry.line}; refusing to connect`,
            { presentedFingerprint: fp, knownFingerprints: [] },
          ),
        };
      case 'mismatch': {
        const known = check.known.map((e) => `${e.keyType} ${fingerprint(e.key)} (${file}:${e.line})`);
        return {
          accept: false,
          error: new SshError(
            'host-key-mismatch',
            describe,
            `HOST KEY MISMATCH: the host presented ${type} ${fp}, but known_hosts has ${known.join(', ')}. ` +
              `Someone may be intercepting the connection, or the host was reinstalled. ` +
              `If the change is expected, remove the old entry (ssh-keygen -R '${knownHostsName(host, port)}' -f ${file}) and connect again.`,
            { presentedFingerprint: fp, knownFingerprints: check.known.map((e) => fingerprint(e.key)) },
          ),
        };
      }
      case 'unverifiable': {
        // Never trust on first use here: OpenSSH would check these lines, podnet cannot.
        const lines = check.entries.map((e) =>
          e.marker === 'cert-authority' ? `@cert-authority (line ${e.line})` : `key type ${e.keyType} (line ${e.line})`,
        );
        const what = [
          ...(check.entries.some((e) => e.marker === 'cert-authority') ? ['podnet cannot check host certificates'] : []),
          ...(check.entries.some((e) => e.marker !== 'cert-authority')
            ? [`podnet cannot check that key type (it checks ${SUPPORTED_KEY_TYPES.join(', ')})`]
            : []),
        ];
        return {
          accept: false,
          error: new SshError(
            'host-key-unknown',
            describe,
            `cannot verify the host key ${type} ${fp}: ${file} names this host only by ${lines.join(', ')}, and ${what.join(', and ')}. ` +
              `Check the fingerprint out of band, then add the host's plain key (ssh-keyscan -p ${port} -t ${shortType(type)} ${host} >> ${file}).`,
            { presentedFingerprint: fp },
          ),
        };
      }
      case 'unknown':
        if (this.opts.acceptNewHostKeys) return { accept: true, record: presented };
        return {
          accept: false,
          error: new SshError(
            'host-key-unknown',
            describe,
            `host key unknown: the host presented ${type} ${fp}, which ${file} does not list. ` +
              `Check the fingerprint out of band (on the host: ssh-keygen -lf /etc/ssh/ssh_host_${shortType(type)}_key.pub), ` +
              `then add it (ssh-keyscan -p ${port} -t ${shortType(type)} ${host} >> ${file}) ` +
              `or connect once with acceptNewHostKeys: true to trust it on first use.`,
            { presentedFingerprint: fp },
          ),
        };
    }
  }

  /**
   * Appends a key that decide() accepted as new to known_hosts (creating the file with mode 600,
   * its directory with 700). Another process may have written known_hosts since: it is read again
   * and judged afresh, so the key is appended only while still unknown, nothing is appended when
   * the same key is there now, and a different key or an @revoked line recorded meanwhile throws
   * (an SshError `host-key-mismatch`: this connection must fail).
   */
  record(presented: Buffer): void {
    const { host, port } = this.opts;
    const again = this.decideWith(readKnownHosts(this.knownHostsPath, this.opts.describe), presented);
    if (!again.accept) throw again.error;
    if (!again.record) return;
    mkdirSync(dirname(this.knownHostsPath), { recursive: true, mode: 0o700 });
    let prefix = '';
    try {
      const current = readFileSync(this.knownHostsPath);
      if (current.length > 0 && current[current.length - 1] !== 0x0a) prefix = '\n';
    } catch {
      /* new file */
    }
    appendFileSync(this.knownHostsPath, prefix + formatKnownHostsLine(host, port, presented), { mode: 0o600 });
  }
}

function shortType(type: string): string {
  if (type === 'ssh-ed25519') return 'ed25519';
  if (type.startsWith('ecdsa-')) return 'ecdsa';
  if (type === 'ssh-rsa') return 'rsa';
  return type;
}

function readKnownHosts(path: string, describe: string): KnownHostsEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new SshError('io', describe, `cannot read known_hosts ${path}: ${(e as Error).message}`, { cause: e });
  }
  return parseKnownHosts(text).entries;
}
