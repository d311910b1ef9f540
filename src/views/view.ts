// What every command's view shares (terraform's views.View): where output goes, colour, and
// which of the two renderings (human or JSON) the user asked for. A command picks its view
// once and never branches on --json after that.

/** `human`: text for terminals (progress on stderr, results on stdout); `json`: one document on stdout. */
export type ViewType = 'human' | 'json';

export interface Streams {
  /** Results. */
  readonly out: (text: string) => void;
  /** Progress and per-host lines while a command runs (human views only). */
  readonly err: (text: string) => void;
  /** ANSI colour in human output (stdout is a terminal). */
  readonly color: boolean;
}

/** The process's own streams; colour when stdout is a terminal. */
export function processStreams(): Streams {
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    color: process.stdout.isTTY === true,
  };
}

export interface Palette {
  add(s: string): string;
  change(s: string): string;
  remove(s: string): string;
  bold(s: string): string;
}

export function palette(color: boolean): Palette {
  const wrap = (code: number) => (s: string) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
  return { add: wrap(32), change: wrap(33), remove: wrap(31), bold: wrap(1) };
}
