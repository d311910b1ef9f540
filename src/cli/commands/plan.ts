// `podnet plan`: what apply would change on each host. With --offline it contacts no host
// and prints the desired state computed from the manifest alone.
import { desiredHostState, resolveManifest, type DesiredHostState } from '../../model';
import { hostPlanHasChanges, planHost, type HostPlan } from '../../engine/host-plan';
import { RuntimeUnavailableError } from '../../engine/runtime-choice';
import { palette, PLAN_SCHEMA, planToJson, renderHostPlan } from '../../views/plan-view';
import { renderHostState } from '../../views/host-state-view';
import { parseCommandArgs } from '../args';
import { CliError } from '../cli-error';
import { ENGINE_USAGE, runEngineCommand } from '../engine-command';
import { readManifestFile } from '../manifest-file';

export const summary = 'show what apply would change on each host (--offline: desired state only)';

const USAGE = `usage: podnet plan [options]

${ENGINE_USAGE}
  --offline               contact no host: print each host's desired state from the manifest
  --detailed-exitcode     exit 0 when nothing would change, 2 when something would, 1 on error`;

function offline(argv: string[]): number {
  const { values } = parseCommandArgs(argv, { offline: { type: 'boolean' }, manifest: { type: 'string' }, node: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
  const { manifest } = readManifestFile(values.manifest);
  const network = resolveManifest(manifest);
  const nodes = values.node ? network.nodes.filter((n) => n.name === values.node) : network.nodes;
  if (nodes.length === 0) throw new CliError(`node '${values.node}' is not in network '${network.name}' (nodes: ${network.nodes.map((n) => n.name).join(', ')})`);
  const states: DesiredHostState[] = nodes.map((n) => desiredHostState(network, n.name));
  if (values.json) {
    process.stdout.write(JSON.stringify({ network: network.name, hosts: states }, null, 2) + '\n');
  } else {
    process.stdout.write(`network ${network.name}: cluster ${network.clusterCidr}, /${network.subnetLength} per node, ipip${network.backend.directRouting ? ' (directRouting)' : ''}, mtu ${network.mtu}\n\n`);
    process.stdout.write(states.map((s, i) => renderHostState(s, nodes[i]!.address)).join('\n\n') + '\n');
  }
  return 0;
}

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--offline')) return offline(argv);
  return runEngineCommand(argv, { 'detailed-exitcode': { type: 'boolean' } }, USAGE, async (ctx, values) => {
    const reads = await ctx.session.readHosts(ctx.nodes);
    const network = await ctx.session.resolveWithHostLeases(reads);
    const targets = new Map(ctx.session.targets(network).map((t) => [t.node, t]));
    const plans: HostPlan[] = [];
    const errors: Array<{ node: string; error: string }> = [];
    for (const r of reads) {
      if (!r.ok) {
        errors.push({ node: r.node, error: r.error });
        continue;
      }
      try {
        plans.push(planHost(targets.get(r.node)!, r.reading, ctx.artifacts));
      } catch (err) {
        if (!(err instanceof RuntimeUnavailableError)) throw err;
        errors.push({ node: r.node, error: err.message });
      }
    }
    const changes = plans.some(hostPlanHasChanges);
    if (ctx.json) {
      process.stdout.write(JSON.stringify({ schema: PLAN_SCHEMA, network: network.name, changes, hosts: plans.map(planToJson), errors }, null, 2) + '\n');
    } else {
      const p = palette(ctx.color);
      for (const plan of plans) process.stdout.write(renderHostPlan(plan, p).join('\n') + '\n');
      for (const e of errors) process.stdout.write(p.remove(`# ${e.node}: ERROR ${e.error}`) + '\n');
      process.stdout.write(changes ? `plan: changes on ${plans.filter(hostPlanHasChanges).map((x) => x.node).join(', ')}\n` : 'plan: no changes\n');
    }
    if (errors.length) return 1;
    return values['detailed-exitcode'] && changes ? 2 : 0;
  });
}
