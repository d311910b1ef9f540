// Typed SSH failures. Every message starts with the host it concerns, so a caller that prints
// `err.message` for one of many hosts never needs to add context.

export type SshErrorKind =
  /** TCP connection refused: nothing listens on the port. */
  | 'refused'
  /** Connect (TCP + handshake + auth) or a command took longer than allowed. */
  | 'timeout'
  /** The server rejected every credential offered, or none could be offered. */
  | 'auth-failed'
  /** known_hosts has key(s) for the host and the presented one is not among them (or is @revoked). */
  | 'host-key-mismatch'
  /** known_hosts has no key for the host and trust-on-first-use was not asked for. */
  | 'host-key-unknown'
  /** No route, host down, name does not resolve. */
  | 'unreachable'
  /** A remote command exited non-zero. */
  | 'command-failed'
  /** The connection dropped during an operation, or the SSH protocol failed. */
  | 'disconnected'
  /** known_hosts could not be read or written. */
  | 'io'
  /** A callback given to SshPool.forEachHost threw something that was not an SshError. */
  | 'internal';

export interface SshErrorDetails {
  /** Command that failed (command-failed, timeout of a command). */
  command?: string;
  exitCode?: number;
  stderrTail?: string;
  /** Fingerprint the host presented (host-key-*). */
  presentedFingerprint?: string;
  /** Fingerprints known_hosts holds for the host (host-key-mismatch). */
  knownFingerprints?: string[];
  cause?: unknown;
}

export class SshError extends Error {
  override readonly name = 'SshError';
  readonly kind: SshErrorKind;
  /** How the host is named in messages: `label (host:port)` or `host:port`. */
  readonly host: string;
  readonly details: SshErrorDetails;

  constructor(kind: SshErrorKind, host: string, message: string, details: SshErrorDetails = {}) {
    super(`${host}: ${message}`, details.cause !== undefined ? { cause: details.cause } : undefined);
    this.kind = kind;
    this.host = host;
    this.details = details;
  }
}

export function isSshError(e: unknown): e is SshError {
  return e instanceof SshError;
}

/** `node1 (192.168.0.81:22)`, or `192.168.0.81:22` without a label; user shown when not root. */
export function describeTarget(t: { host: string; port?: number; user?: string; label?: string }): string {
  const user = t.user && t.user !== 'root' ? `${t.user}@` : '';
  const addr = `${user}${t.host}:${t.port ?? 22}`;
  return t.label ? `${t.label} (${addr})` : addr;
}

/** The last `maxLines` lines / `maxChars` characters of a command's stderr, for messages. */
export function tail(text: string, maxLines = 10, maxChars = 2000): string {
  const trimmed = text.replace(/\s+$/, '');
  let out = trimmed.split('\n').slice(-maxLines).join('\n');
  if (out.length > maxChars) out = '…' + out.slice(-maxChars);
  return out;
}

export function commandFailed(host: string, command: string, exitCode: number, stderr: string): SshError {
  const stderrTail = tail(stderr);
  const shown = command.length > 200 ? command.slice(0, 200) + '…' : command;
  let hint = '';
  if (/sudo: (a password is required|a terminal is required)/.test(stderr)) {
    hint = '\n(the user needs passwordless sudo for podnet: a NOPASSWD rule in /etc/sudoers.d)';
  } else if (exitCode === 127 && /sudo: (command )?not found/.test(stderr)) {
    hint = '\n(sudo is not installed on the host; install it or connect as root)';
  }
  return new SshError(
    'command-failed',
    host,
    `command failed with exit code ${exitCode}: ${shown}` + (stderrTail ? `\nstderr:\n${stderrTail}` : '') + hint,
    { command, exitCode, stderrTail },
  );
}
