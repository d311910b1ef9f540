// A CDKTF app whose whole model is a JSON file: the props of one PodNetwork, read from
// ./network.json in the project directory the cdktf CLI runs it from (stack `reference`). For a
// model kept as data (generated, or edited by tools); test/lab/terraform.test.ts and
// `bench:control --cdktf` deploy it with the real cdktf CLI, changing the file between deploys.
import { readFileSync } from 'node:fs';
import { App, TerraformStack } from 'cdktf';
import { PodNetwork, type PodNetworkProps } from '../stacks';

const props = JSON.parse(readFileSync('network.json', 'utf8')) as PodNetworkProps;
const app = new App();
new PodNetwork(new TerraformStack(app, 'reference'), 'cluster', props);
app.synth();
