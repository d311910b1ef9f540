// `podnet destroy`: stop the agent, have it tear down what it created, remove podnet's files.
// --if-revision R (used by the cdktf destroy-time provisioner) skips a host whose recorded
// revision is not R: a newer apply has replaced that resource, so the network must stay.
import { destroyHost } from '../../engine/apply';
import { ENGINE_USAGE, runEngineCommand } from '../engine-command';

export const summary = 'remove the agent and everything it created from each host';

const USAGE = `usage: podnet destroy [options]

${ENGINE_USAGE}
  --if-revision R         only hosts whose recorded revision is R (cdktf replacement guard)`;

export async function run(argv: string[]): Promise<number> {
  return runEngineCommand(argv, { 'if-revision': { type: 'string' } }, USAGE, async (ctx, values) => {
    const reads = await ctx.session.readHosts(ctx.nodes);
    const network = ctx.session.resolveWithHostLeases(reads);
    const targets = new Map(ctx.session.targets(network).map((t) => [t.node, t]));
    const guard = values['if-revision'] as string | undefined;
    const results = await Promise.all(
      reads.map(async (r) => {
        if (!r.ok) return { node: r.node, ok: false, error: r.error, actions: [] as string[] };
        if (guard && r.reading.revision !== undefined && r.reading.revision !== guard) {
          return { node: r.node, ok: true, actions: [`skipped: host holds revision ${r.reading.revision}, not ${guard}`] };
        }
        try {
          const t = targets.get(r.node)!;
          const conn = await ctx.session.connection(network.nodes.find((n) => n.name === r.node)!);
          return { node: r.node, ok: true, actions: await destroyHost(conn, network.name, t.configPath, t.unitPath) };
        } catch (err) {
          return { node: r.node, ok: false, error: (err as Error).message, actions: [] as string[] };
        }
      }),
    );
    if (ctx.json) process.stdout.write(JSON.stringify({ schema: 'podnet.dev/destroy/v1', network: network.name, hosts: results }, null, 2) + '\n');
    else for (const r of results) process.stdout.write(r.ok ? `${r.node}: ${r.actions.join(', ')}\n` : `${r.node}: FAILED: ${r.error}\n`);
    return results.every((r) => r.ok) ? 0 : 1;
  });
}
