// `podnet force-unlock --node N LOCK_ID`: removes a host lock whose apply or destroy is gone
// (like terraform force-unlock). Only the lock with that id: a newer holder's lock stays.
import { describeHeldLock, forceUnlock } from '../../engine/host-lock';
import { FORCE_UNLOCK_USAGE, parseForceUnlockArgs } from '../arguments';
import { runParsed, withEngine } from '../engine-command';

export const summary = "remove a host's lock left by an apply or destroy that is gone";

export async function run(argv: string[]): Promise<number> {
  return runParsed(parseForceUnlockArgs(argv), FORCE_UNLOCK_USAGE, (args) =>
    withEngine(args.engine, async (ctx) => {
      const node = ctx.nodes[0]!;
      const network = ctx.session.manifest.network.name;
      const result = await forceUnlock(await ctx.session.connection(node), network, args.lockId);
      if (result.outcome === 'removed') {
        ctx.streams.out(`${node.name}: lock ${args.lockId} removed\n`);
        return 0;
      }
      if (result.outcome === 'none') {
        ctx.streams.out(`${node.name}: not locked\n`);
        return 0;
      }
      ctx.streams.err(`${describeHeldLock(node.name, network, result.lock, 0)}\n(not removed: its id is not ${args.lockId})\n`);
      return 1;
    }),
  );
}
