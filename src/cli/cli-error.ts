/** An error whose message is meant for the user as it is: no stack trace is printed. */
export class CliError extends Error {
  override readonly name = 'CliError';
}
