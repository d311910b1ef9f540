// The reference network from flannel's IPIP walkthrough: master, node1 and node2 on
// 192.168.0.80-82, pods in 10.244.0.0/16 with a /24 per node, IP-in-IP.
// `npx cdktf synth` (see cdktf.json) synthesizes it into cdktf.out/.
import { App, TerraformStack } from 'cdktf';
import { PodNetwork } from '../stacks';
import type { NodeSpec } from '../src/model';

/** The lab's SSH key and known_hosts (written by `podnet lab up`); override for real hosts. */
const labDir = process.env.PODNET_LAB_DIR ?? '/var/lib/podnet/lab/podnet';

export const referenceNodes: NodeSpec[] = [
  { name: 'master', address: '192.168.0.80' },
  { name: 'node1', address: '192.168.0.81' },
  { name: 'node2', address: '192.168.0.82' },
];

export function referenceApp(outdir?: string): App {
  const app = new App(outdir ? { outdir } : {});
  const stack = new TerraformStack(app, 'reference');
  new PodNetwork(stack, 'cluster', {
    name: 'cluster',
    clusterCidr: '10.244.0.0/16',
    subnetLength: 24,
    backend: { type: 'ipip', directRouting: false, datapath: 'auto' },
    ssh: { user: 'root', privateKeyPath: `${labDir}/id_ed25519`, knownHostsPath: `${labDir}/known_hosts` },
    nodes: referenceNodes,
    // terraform runs podnet inside the lab's workstation namespace (see `podnet --lab`).
    podnetArgs: ['--lab', process.env.PODNET_LAB ?? 'podnet'],
  });
  return app;
}

if (require.main === module) referenceApp().synth();
