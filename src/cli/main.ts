// The `podnet` command line. Each command lives in its own module under ./commands and
// exports `run(argv): Promise<number>`; the number is the process exit code.
import { CliError } from './cli-error';

type CommandModule = { run(argv: string[]): Promise<number>; summary: string };

const commands: Record<string, () => Promise<CommandModule>> = {
  plan: () => import('./commands/plan'),
  apply: () => import('./commands/apply'),
  drift: () => import('./commands/drift'),
  destroy: () => import('./commands/destroy'),
  'force-unlock': () => import('./commands/force-unlock'),
  lab: () => import('./commands/lab'),
};

/** The usage with each command's one-line summary (what it does; `podnet <command> --help` for options). */
async function usage(): Promise<string> {
  const names = Object.keys(commands);
  const summaries = await Promise.all(names.map(async (name) => (await commands[name]!()).summary));
  const width = Math.max(...names.map((n) => n.length)) + 2;
  return [
    'usage: podnet <command> [options]',
    '',
    'commands:',
    ...names.map((name, i) => `  ${name.padEnd(width)}${summaries[i]}`),
    '',
    "Run 'podnet <command> --help' for a command's options.",
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write((await usage()) + '\n');
    return name ? 0 : 1;
  }
  const load = commands[name];
  if (!load) {
    process.stderr.write(`podnet: unknown command '${name}'\n\n${await usage()}\n`);
    return 1;
  }
  const command = await load();
  return command.run(rest);
}

// `podnet drift | head`: a reader that stops early is not a crash. The rest of the output is
// dropped and the command finishes, so its exit code (drift 2, a failed host 1) still stands.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof CliError) process.stderr.write(`podnet: ${err.message}\n`);
    else process.stderr.write(`podnet: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
