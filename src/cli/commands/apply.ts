// `podnet apply`: make every host (or --node) match the manifest, in parallel; one host's
// failure does not stop the others; exit 1 if any failed.
import { applyNetwork } from '../../engine/apply';
import { applyView } from '../../views/apply-view';
import { APPLY_USAGE, parseApplyArgs } from '../arguments';
import { runParsed, withEngine } from '../engine-command';

export const summary = 'install or update the agent on each host and wait until it converges';

export async function run(argv: string[]): Promise<number> {
  return runParsed(parseApplyArgs(argv), APPLY_USAGE, (args) =>
    withEngine(args.engine, async (ctx) => {
      const view = applyView(args.engine.view, ctx.streams);
      const apply = await applyNetwork(ctx.session, ctx.nodes, ctx.artifacts(), {
        ...(args.revision ? { revision: args.revision } : {}),
        lockTimeoutMs: args.lockTimeoutMs,
        onProgress: view.progress,
      });
      view.result(apply);
      return apply.ok ? 0 : 1;
    }),
  );
}
