// Writes several small files on a host in one SSH round trip, each atomically: content is
// decoded into a temp file beside its target, all temp files are synced together, then
// each is renamed into place. A failure part-way leaves every target either old or new,
// never half-written (temp files are removed on the way out). Temp names come from mktemp,
// so two applies running at once never write into each other's temp file.
import { posix } from 'node:path';
import { tempPathFor } from '../model';
import { shQuote, wholeScript } from '../ssh';

export interface FileToWrite {
  /** Absolute path on the host; missing parent directories are created. */
  readonly path: string;
  readonly content: Buffer | string;
  /** Permission bits, e.g. 0o644. */
  readonly mode: number;
}

/**
 * A POSIX sh script that writes `files` (run it as `sh -s` with the script on stdin: as an
 * argument it would hit the kernel's 128 KiB limit). It exits non-zero on the first failure, and
 * runs whole or not at all when the stream is cut (wholeScript).
 */
export function writeFilesScript(files: readonly FileToWrite[]): string {
  // mktemp makes each name (following the host layout's rule, so destroy's clean-up finds a
  // crash's leftovers) into $t0, $t1, ...; the EXIT trap lists them quoted (`rm -f ""` for one
  // not yet made is harmless); once all are renamed the trap is dropped.
  const tmps = files.map((_, i) => `"$t${i}"`);
  const lines = ['set -e', `podnet_cleanup() { rm -f ${tmps.join(' ')}; }`, 'trap podnet_cleanup EXIT'];
  files.forEach((f, i) => {
    const data = (typeof f.content === 'string' ? Buffer.from(f.content, 'utf8') : f.content).toString('base64');
    lines.push(
      `mkdir -p ${shQuote(posix.dirname(f.path))}`,
      `t${i}=$(mktemp ${shQuote(tempPathFor(f.path, 'XXXXXX'))})`,
      `base64 -d > ${tmps[i]} <<'PODNET_EOF_${i}'`,
      ...(data.match(/.{1,76}/g) ?? []),
      `PODNET_EOF_${i}`,
      `chmod ${f.mode.toString(8)} ${tmps[i]}`,
    );
  });
  lines.push(`sync ${tmps.join(' ')}`);
  files.forEach((f, i) => lines.push(`mv -f ${tmps[i]} ${shQuote(f.path)}`));
  lines.push('trap - EXIT');
  return wholeScript(lines.join('\n'));
}
