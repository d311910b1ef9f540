// A team's podnet stack for GitOps: the reference network, its Terraform state in PostgreSQL.
// The pg backend locks the state while a plan or deploy runs, so two pipelines (or a pipeline
// and a colleague) never deploy at once: the second fails with "Error acquiring the state lock".
// `pipeline.sh` runs it; `.github/workflows/podnet.yml` runs `pipeline.sh` on PRs, merges and a
// schedule.
import { App, PgBackend, TerraformStack } from 'cdktf';
import { PodNetwork } from '../../stacks';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (see examples/gitops/pipeline.sh)`);
  return value;
};

const app = new App();
const stack = new TerraformStack(app, 'podnet');
// Empty on purpose: Terraform then reads PG_CONN_STR from the environment (the pipeline's secret),
// so no credentials are written into cdk.tf.json or .terraform/.
new PgBackend(stack, { connStr: '' });
new PodNetwork(stack, 'cluster', {
  name: 'cluster',
  clusterCidr: '10.244.0.0/16',
  subnetLength: 24,
  backend: { type: 'ipip', directRouting: false, datapath: 'auto' },
  // Whoever deploys brings their own key and known_hosts (a CI secret, a laptop's ~/.ssh): the
  // paths never reach the hosts, so any workstation deploys the same host state.
  ssh: { user: 'root', privateKeyPath: env('PODNET_SSH_KEY'), knownHostsPath: env('PODNET_KNOWN_HOSTS') },
  nodes: [
    { name: 'master', address: '192.168.0.80' },
    { name: 'node1', address: '192.168.0.81' },
    { name: 'node2', address: '192.168.0.82' },
  ],
});
app.synth();
