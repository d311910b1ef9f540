// Thin wrapper over node's util.parseArgs: unknown options and missing values become
// CliErrors with the command's usage, instead of stack traces.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliError } from './cli-error';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export function parseCommandArgs<O extends OptionSpec>(argv: string[], options: O, usage: string) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true });
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n\n${usage}`);
  }
}
