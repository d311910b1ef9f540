// The POSIX sh wrappers the transport puts around each remote command (sudo, a host-side
// timeout). Pure strings, unit-tested. Quoting itself is src/host/shell-quote.ts.
import { shQuote } from '../host/shell-quote';

/** `sudo -n sh -c '<command>'`: non-interactive, fails at once if a password would be needed. */
export function sudoWrap(command: string): string {
  return `sudo -n sh -c ${shQuote(command)}`;
}

/** `sh -c '<script>' <name> args...`, quoted for the remote shell. */
export function shScript(script: string, name: string, args: string[]): string {
  return ['sh', '-c', shQuote(script), shQuote(name), ...args.map(shQuote)].join(' ');
}

/**
 * Runs `command` under coreutils/busybox `timeout -s KILL` (which kills the command's whole
 * process group) when the host has it, else as it is.
 */
export function withRemoteTimeout(command: string, seconds: number): string {
  return shScript(
    'if command -v timeout >/dev/null 2>&1; then exec timeout -s KILL "$1" sh -c "$2"; else exec sh -c "$2"; fi',
    'podnet-exec',
    [String(seconds), command],
  );
}

/**
 * A script to stream to `sh -s` that runs whole or not at all: the body becomes a function
 * called on the last line. A shell reading stdin runs each line as it arrives, and at EOF dash
 * even runs an unterminated last line, so a connection cut mid-stream would otherwise run the
 * first half of a script, or a `mv` to a truncated path. A cut body is a syntax error (the
 * function never closes) and a cut call runs nothing.
 */
export function wholeScript(body: string): string {
  return `podnet_main() {\n${body.replace(/\n$/, '')}\n}\npodnet_main "$@"\n`;
}
