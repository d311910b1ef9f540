// `podnet destroy`: stop the agent, have it tear down what it created, remove podnet's files.
// --if-revision R (used by the cdktf destroy-time provisioner) skips a host whose recorded
// revision is not R. With --network and --address it needs no manifest: a node removed from
// the model is destroyed after synth has already written a manifest without it.
import { destroyAt, destroyNetwork } from '../../engine/destroy';
import { destroyView } from '../../views/destroy-view';
import { processStreams } from '../../views/view';
import { DESTROY_USAGE, parseDestroyArgs } from '../arguments';
import { runParsed, withEngine } from '../engine-command';
import { labSshOverrides, reexecInLab } from '../lab-context';

export const summary = 'remove the agent and everything it created from each host';

export async function run(argv: string[]): Promise<number> {
  return runParsed(parseDestroyArgs(argv), DESTROY_USAGE, async (args) => {
    const guard = { ...(args.ifRevision ? { ifRevision: args.ifRevision } : {}), lockTimeoutMs: args.lockTimeoutMs };
    if (args.mode === 'manifest') {
      return withEngine(args.engine, async (ctx) => {
        const destroy = await destroyNetwork(ctx.session, ctx.nodes, guard);
        destroyView(args.engine.view, ctx.streams).result(destroy);
        return destroy.ok ? 0 : 1;
      });
    }
    if (args.lab) {
      const code = await reexecInLab(args.lab);
      if (code !== undefined) return code;
    }
    const lab = labSshOverrides(args.lab);
    const privateKeyPath = args.sshKey ?? lab.privateKeyPath;
    const knownHostsPath = args.knownHosts ?? lab.knownHostsPath;
    const destroy = await destroyAt(
      {
        network: args.network,
        node: args.node,
        ssh: {
          host: args.address,
          port: args.sshPort,
          user: args.sshUser,
          sudo: args.sshUser !== 'root',
          label: args.node,
          ...(privateKeyPath ? { privateKeyPath } : {}),
          ...(knownHostsPath ? { knownHostsPath } : {}),
        },
      },
      guard,
    );
    destroyView(args.view, processStreams()).result(destroy);
    return destroy.ok ? 0 : 1;
  });
}
