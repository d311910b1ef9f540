// `podnet plan`: what apply would change on each host. With --offline it contacts no host
// and prints the desired state computed from the manifest alone.
import { UnknownNodeError } from '../../model';
import { planNetwork, planOffline } from '../../engine/network-plan';
import { planView } from '../../views/plan-view';
import { processStreams } from '../../views/view';
import { parsePlanArgs, PLAN_USAGE } from '../arguments';
import { CliError } from '../cli-error';
import { runParsed, withEngine } from '../engine-command';
import { readManifestFile } from '../manifest-file';

export const summary = 'show what apply would change on each host (--offline: desired state from the manifest only)';

export async function run(argv: string[]): Promise<number> {
  return runParsed(parsePlanArgs(argv), PLAN_USAGE, async (args) => {
    if (args.mode === 'offline') {
      const { manifest } = readManifestFile(args.manifest);
      try {
        planView(args.view, processStreams()).offline(planOffline(manifest, args.nodes));
      } catch (err) {
        if (err instanceof UnknownNodeError) throw new CliError(err.message);
        throw err;
      }
      return 0;
    }
    return withEngine(args.engine, async (ctx) => {
      const plan = await planNetwork(ctx.session, ctx.nodes, ctx.artifacts());
      planView(args.engine.view, ctx.streams).plan(plan);
      if (plan.errors.length) return 1;
      return args.detailedExitCode && plan.hasChanges ? 2 : 0;
    });
  });
}
