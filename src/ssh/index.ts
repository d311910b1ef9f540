// SSH transport: key auth, known_hosts verification (TOFU only when asked), one connection per
// host, bounded parallelism, typed errors. See ssh-connection.ts for the connection itself.
export { SshConnection, type SshTarget, type ExecOptions } from './ssh-connection';
export type { CommandResult } from '../host/command-result';
export { SshPool, poolKey, type SshPoolOptions, type HostOutcome } from './connection-pool';
export { SshError, isSshError, describeTarget, type SshErrorKind, type SshErrorDetails } from './errors';
export { HostKeyVerifier, defaultKnownHostsPath } from './host-key-verifier';
export {
  parseKnownHosts,
  checkHostKey,
  entryMatchesHost,
  fingerprint,
  formatKnownHostsLine,
  hashKnownHostsName,
  knownHostsName,
  keyBlobType,
  type KnownHostsEntry,
  type ParsedKnownHosts,
} from './known-hosts';
export { wholeScript } from './shell';
export { shQuote } from '../host/shell-quote';
