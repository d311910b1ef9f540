// What running one command on a host gives back, wherever it ran: over SSH (src/ssh), in a lab
// namespace (src/lab), or in the agent (agent/host/runner.ts). One shape, one name.

/** A finished command. `code` is its exit status (127 when it could not be started, 128+N after signal N where the runner can tell); stdout and stderr as UTF-8 text. */
export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}
