// `podnet plan`: what each host should look like. With --offline it needs no hosts: it
// prints the desired state computed from the manifest alone (leases as synth decided them).
import { desiredHostState, resolveManifest, type DesiredHostState } from '../../model';
import { parseCommandArgs } from '../args';
import { CliError } from '../cli-error';
import { readManifestFile } from '../manifest-file';
import { renderHostState } from '../../views/host-state-view';

export const summary = 'show the desired state of each host (--offline: from the manifest alone)';

const USAGE = `usage: podnet plan --offline [--manifest FILE] [--node NAME] [--json]

  --offline        compute the desired state from the manifest without contacting hosts
  --manifest FILE  network manifest (default: the one under ./cdktf.out)
  --node NAME      only this node
  --json           print JSON: { "network": ..., "hosts": [DesiredHostState...] }`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    offline: { type: 'boolean' },
    manifest: { type: 'string' },
    node: { type: 'string' },
    json: { type: 'boolean' },
  }, USAGE);
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (!values.offline) throw new CliError(`plan against live hosts is not built yet; use --offline\n\n${USAGE}`);
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
