/** One thing wrong with a declared network: which field, what value, and why. */
export interface ModelProblem {
  /** The field's path as a user would write it, e.g. `nodes[1].podCidr`. */
  readonly field: string;
  readonly value: unknown;
  readonly message: string;
}

export function describeProblem(problem: ModelProblem): string {
  const shown = problem.value === undefined ? '' : ` ${JSON.stringify(problem.value)}`;
  return `${problem.field}${shown}: ${problem.message}`;
}

/** Thrown when a network spec is invalid; the message lists every problem, one per line. */
export class NetworkValidationError extends Error {
  override readonly name = 'NetworkValidationError';
  constructor(readonly problems: readonly ModelProblem[]) {
    super(
      problems.length === 1
        ? `invalid network: ${describeProblem(problems[0]!)}`
        : `invalid network (${problems.length} problems):\n${problems.map((p) => `  - ${describeProblem(p)}`).join('\n')}`,
    );
  }
}
