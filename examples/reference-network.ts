// The reference network from flannel's IPIP walkthrough: master, node1 and node2 on
// 192.168.0.80-82, pods in 10.244.0.0/16 with a /24 per node, IP-in-IP.
// `npx cdktf synth` (see cdktf.json) synthesizes it into cdktf.out/.
import { App, TerraformStack } from 'cdktf';
import { PodNetwork } from '../stacks';
import type { NodeSpec } from '../src/model';

export const referenceNodes: NodeSpec[] = [
  { name: 'master', address: '192.168.0.80' },
  { name: 'node1', address: '192.168.0.81' },
  { name: 'node2', address: '192.168.0.82' },
];

export interface ReferenceAppOptions {
  readonly outdir?: string;
  /** The podnet lab whose hosts play master/node1/node2 (default `podnet`, or $PODNET_LAB). */
  readonly lab?: string;
  readonly nodes?: readonly NodeSpec[];
}

export function referenceApp(opts: ReferenceAppOptions = {}): App {
  const lab = opts.lab ?? process.env.PODNET_LAB ?? 'podnet';
  // The lab's SSH key and known_hosts, written by `podnet lab up`; for real hosts, point
  // these at your own key and known_hosts and drop podnetArgs.
  const labDir = `/var/lib/podnet/lab/${lab}`;
  const app = new App(opts.outdir ? { outdir: opts.outdir } : {});
  const stack = new TerraformStack(app, 'reference');
  new PodNetwork(stack, 'cluster', {
    name: 'cluster',
    clusterCidr: '10.244.0.0/16',
    subnetLength: 24,
    backend: { type: 'ipip', directRouting: false, datapath: 'auto' },
    ssh: { user: 'root', privateKeyPath: `${labDir}/id_ed25519`, knownHostsPath: `${labDir}/known_hosts` },
    nodes: opts.nodes ?? referenceNodes,
    // terraform's local-exec runs podnet inside the lab's workstation namespace.
    podnetArgs: ['--lab', lab],
  });
  return app;
}

if (require.main === module) referenceApp().synth();
