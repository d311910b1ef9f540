// `podnet drift`: read-only comparison of every host with the manifest.
// Exit 0 in sync, 2 drift, 1 error (like terraform plan -detailed-exitcode).
import { DRIFT_SCHEMA, hostDrift, type DriftReport, type HostDrift } from '../../engine/drift';
import { palette, renderDrift } from '../../views/plan-view';
import { ENGINE_USAGE, runEngineCommand } from '../engine-command';

export const summary = 'report where hosts differ from the manifest (exit 0 in sync, 2 drift, 1 error)';

const USAGE = `usage: podnet drift [options]

${ENGINE_USAGE}

exit codes: 0 in sync, 2 drift, 1 error. --json prints schema ${DRIFT_SCHEMA}:
  { schema, network, inSync, hosts: [{ node, address, inSync, error?, differences: [{ kind, subject, expected?, actual? }] }] }`;

export async function run(argv: string[]): Promise<number> {
  return runEngineCommand(argv, {}, USAGE, async (ctx) => {
    const reads = await ctx.session.readHosts(ctx.nodes);
    const network = await ctx.session.resolveWithHostLeases(reads);
    const targets = new Map(ctx.session.targets(network).map((t) => [t.node, t]));
    const hosts: HostDrift[] = reads.map((r) => {
      const target = targets.get(r.node)!;
      return r.ok ? hostDrift(target, r.reading, ctx.artifacts) : { node: r.node, address: target.address, inSync: false, differences: [], error: r.error };
    });
    const report: DriftReport = { schema: DRIFT_SCHEMA, network: network.name, inSync: hosts.every((h) => h.inSync), hosts };
    process.stdout.write((ctx.json ? JSON.stringify(report, null, 2) : renderDrift(report, palette(ctx.color))) + '\n');
    if (hosts.some((h) => h.error)) return 1;
    return report.inSync ? 0 : 2;
  });
}
