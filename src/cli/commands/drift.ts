// `podnet drift`: read-only comparison of every host with the manifest.
// Exit 0 in sync, 2 drift, 1 error (like terraform plan -detailed-exitcode).
import { driftNetwork } from '../../engine/drift';
import { driftView } from '../../views/drift-view';
import { DRIFT_USAGE, parseDriftArgs } from '../arguments';
import { runParsed, withEngine } from '../engine-command';

export const summary = 'report where hosts differ from the manifest, read-only (exit 0 in sync, 2 drift, 1 error)';

export async function run(argv: string[]): Promise<number> {
  return runParsed(parseDriftArgs(argv), DRIFT_USAGE, (args) =>
    withEngine(args.engine, async (ctx) => {
      const drift = await driftNetwork(ctx.session, ctx.nodes, ctx.artifacts());
      driftView(args.engine.view, ctx.streams).result(drift);
      if (drift.hosts.some((h) => h.error)) return 1;
      return drift.inSync ? 0 : 2;
    }),
  );
}
