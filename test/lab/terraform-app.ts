// The CDKTF app `test/lab/terraform.test.ts` deploys with the real cdktf CLI: the props of one
// PodNetwork, read from ./network.json in the project directory the CLI runs it from, so each
// deploy of the test can change the model.
import { readFileSync } from 'node:fs';
import { App, TerraformStack } from 'cdktf';
import { PodNetwork, type PodNetworkProps } from '../../stacks';

const props = JSON.parse(readFileSync('network.json', 'utf8')) as PodNetworkProps;
const app = new App();
new PodNetwork(new TerraformStack(app, 'reference'), 'cluster', props);
app.synth();
