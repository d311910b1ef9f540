// Shell quoting and the small POSIX sh helpers the transport runs on hosts when SFTP can't be
// used (a non-root user writing through sudo). Pure strings, unit-tested.

/** Quotes one word for POSIX sh: `it's` -> `'it'\''s'`. */
export function shQuote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** `sudo -n sh -c '<command>'`: non-interactive, fails at once if a password would be needed. */
export function sudoWrap(command: string): string {
  return `sudo -n sh -c ${shQuote(command)}`;
}

/**
 * Writes stdin to "$1/$2" atomically: a temp file in the same directory, size check (a dropped
 * connection ends stdin early, and a short file must never be installed), fsync, chmod, rename.
 * The EXIT trap removes the temp file on any failure. Args: dir base octal-mode expected-size.
 */
export const WRITE_ATOMIC_SCRIPT = [
  'set -eu',
  'dir=$1; base=$2; mode=$3; size=$4; dest="$dir/$base"',
  '[ -d "$dir" ] || mkdir -p -m 755 "$dir"',
  'if [ -d "$dest" ]; then echo "podnet: $dest is a directory" >&2; exit 1; fi',
  'tmp=$(mktemp "$dir/.$base.podnet-tmp-XXXXXX")',
  `trap 'rm -f "$tmp"' EXIT`,
  'cat > "$tmp"',
  'got=$(wc -c < "$tmp")',
  'if [ "$got" -ne "$size" ]; then echo "podnet: upload incomplete: $got of $size bytes arrived" >&2; exit 1; fi',
  'sync "$tmp" 2>/dev/null || sync',
  'chmod "$mode" "$tmp"',
  'mv -f "$tmp" "$dest"',
  'trap - EXIT',
  // Temp files left by uploads whose connection died mid-way (their trap could not run).
  'rm -f "$dir/.$base.podnet-tmp-"* 2>/dev/null || true',
].join('\n');

/** Exit code of READ_SCRIPT when the file does not exist. */
export const READ_ABSENT_EXIT = 44;

export const READ_SCRIPT = `if [ -e "$1" ] || [ -L "$1" ]; then exec cat "$1"; else exit ${READ_ABSENT_EXIT}; fi`;

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
