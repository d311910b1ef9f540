// `podnet apply`: make every host (or --node) match the manifest, in parallel; one host's
// failure does not stop the others; exit 1 if any failed.
import { applyHost, type ApplyHostResult } from '../../engine/apply';
import { planHost, type RuntimeStep } from '../../engine/host-plan';
import { renderApplyResult } from '../../views/plan-view';
import { ENGINE_USAGE, runEngineCommand } from '../engine-command';

export const summary = 'install or update the agent on each host and wait until it converges';

const USAGE = `usage: podnet apply [options]

${ENGINE_USAGE}
  --revision R            record R on the host (used by the cdktf destroy guard)`;

function describeRuntime(step: RuntimeStep): string {
  if (step.action === 'ship') return 'shipping the node runtime';
  return `runtime ${step.action === 'link-host' ? step.path : step.target}`;
}

export async function run(argv: string[]): Promise<number> {
  return runEngineCommand(argv, { revision: { type: 'string' } }, USAGE, async (ctx, values) => {
    const reads = await ctx.session.readHosts(ctx.declared.nodes.filter((n) => ctx.nodes.includes(n)));
    const network = await ctx.session.resolveWithHostLeases(reads);
    const targets = new Map(ctx.session.targets(network).map((t) => [t.node, t]));
    const results: ApplyHostResult[] = await Promise.all(
      reads.map(async (read): Promise<ApplyHostResult> => {
        const failed = (error: string): ApplyHostResult => {
          const result: ApplyHostResult = { node: read.node, ok: false, changed: false, actions: [], error, seconds: 0 };
          if (!ctx.json) process.stderr.write(`${renderApplyResult(result)}\n`);
          return result;
        };
        if (!read.ok) return failed(read.error);
        const target = targets.get(read.node)!;
        const node = network.nodes.find((n) => n.name === read.node)!;
        try {
          const plan = planHost(target, read.reading, ctx.artifacts);
          if (!ctx.json) process.stderr.write(`${read.node}: applying (${describeRuntime(plan.runtime)}, ${plan.uploads.length} upload(s), ${plan.files.length} file(s), service ${plan.service})\n`);
          const conn = await ctx.session.connection(node);
          const result = await applyHost(conn, target, plan, values.revision as string | undefined, read.reading.status);
          if (!ctx.json) process.stderr.write(`${renderApplyResult(result)}\n`);
          return result;
        } catch (err) {
          return failed((err as Error).message);
        }
      }),
    );
    const failed = results.filter((r) => !r.ok);
    if (ctx.json) process.stdout.write(JSON.stringify({ schema: 'podnet.dev/apply/v1', network: network.name, ok: failed.length === 0, hosts: results }, null, 2) + '\n');
    else process.stdout.write(`apply: ${results.length - failed.length}/${results.length} hosts ok, ${results.filter((r) => r.changed).length} changed${failed.length ? `; failed: ${failed.map((f) => f.node).join(', ')}` : ''}\n`);
    return failed.length ? 1 : 0;
  });
}
