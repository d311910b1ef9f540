// Writes several small files on a host in one SSH round trip, each atomically: content is
// decoded into a temp file beside its target, all temp files are synced together, then
// each is renamed into place. A failure part-way leaves every target either old or new,
// never half-written (temp files are removed on the way out).
import { posix } from 'node:path';
import { shQuote } from '../ssh';

export interface FileToWrite {
  readonly path: string;
  readonly content: Buffer | string;
  readonly mode: number;
}

export function writeFilesScript(files: readonly FileToWrite[], tag = 'podnet-tmp'): string {
  const lines = ['set -e', 'tmps=""', 'trap \'rm -f $tmps\' EXIT'];
  files.forEach((f, i) => {
    const tmp = `${posix.dirname(f.path)}/.${posix.basename(f.path)}.${tag}.${i}`;
    const data = (typeof f.content === 'string' ? Buffer.from(f.content, 'utf8') : f.content).toString('base64');
    lines.push(
      `mkdir -p ${shQuote(posix.dirname(f.path))}`,
      `tmps="$tmps ${shQuote(tmp)}"`,
      `base64 -d > ${shQuote(tmp)} <<'PODNET_EOF_${i}'`,
      ...(data.match(/.{1,76}/g) ?? []),
      `PODNET_EOF_${i}`,
      `chmod ${f.mode.toString(8)} ${shQuote(tmp)}`,
    );
  });
  const tmps = files.map((f, i) => shQuote(`${posix.dirname(f.path)}/.${posix.basename(f.path)}.${tag}.${i}`));
  lines.push(`sync ${tmps.join(' ')}`);
  files.forEach((f, i) => lines.push(`mv -f ${tmps[i]} ${shQuote(f.path)}`));
  lines.push('tmps=""');
  return lines.join('\n') + '\n';
}
