// Why one host failed, as data: a kind a script can branch on and the message people read.
// SSH failures keep their SshError kind; the engine adds its own for what is not SSH.
import { isSshError, type SshErrorKind } from '../ssh';
import { UnderlayError } from '../model';
import { HostLockedError } from './host-lock';
import { HostReadError } from './host-reading';
import { OtherNetworkRunningError } from './host-plan';
import { RuntimeUnavailableError } from './runtime-choice';

export type HostErrorKind =
  | SshErrorKind
  /** `agentRuntime: host` and the host has no usable Node.js. */
  | 'runtime-unavailable'
  /** The host cannot carry the tunnel as declared (model/underlay.ts): no such interface, MTU too large. */
  | 'underlay'
  /** The agent did not report the new config converged in time. */
  | 'converge-timeout'
  /** Another apply or destroy holds the host's lock (the message names it). */
  | 'host-locked'
  /** A command the host's live state is read with failed (e.g. `ip -json link`). */
  | 'host-read'
  /** Another podnet network's agent runs on the host (the message names it and what to do). */
  | 'other-network';

export interface HostError {
  readonly kind: HostErrorKind;
  /** Starts with the host when it comes from SSH; the views print it as it is. */
  readonly message: string;
}

/** Thrown by apply's converge wait. */
export class ConvergeTimeoutError extends Error {
  override readonly name = 'ConvergeTimeoutError';
}

/** The HostError for anything a host's work threw; unknown errors are `internal`. */
export function hostErrorOf(err: unknown): HostError {
  if (isSshError(err)) return { kind: err.kind, message: err.message };
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof RuntimeUnavailableError) return { kind: 'runtime-unavailable', message };
  if (err instanceof UnderlayError) return { kind: 'underlay', message };
  if (err instanceof ConvergeTimeoutError) return { kind: 'converge-timeout', message };
  if (err instanceof HostLockedError) return { kind: 'host-locked', message };
  if (err instanceof HostReadError) return { kind: 'host-read', message };
  if (err instanceof OtherNetworkRunningError) return { kind: 'other-network', message };
  return { kind: 'internal', message };
}
