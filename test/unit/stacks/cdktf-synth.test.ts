// `npx cdktf synth` as a user runs it: the cdktf CLI, cdktf.json's app, offline.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(__dirname, '..', '..', '..');

it('npx cdktf synth writes one terraform_data block with three instances and the manifest for the reference network', () => {
  const out = mkdtempSync(join(tmpdir(), 'podnet-cdktf-'));
  try {
    execFileSync('npx', ['--no-install', 'cdktf', 'synth', '--output', out], {
      cwd: root,
      env: { ...process.env, CHECKPOINT_DISABLE: '1' },
      stdio: 'pipe',
      timeout: 120_000,
    });
    const tf = JSON.parse(readFileSync(join(out, 'stacks', 'reference', 'cdk.tf.json'), 'utf8')) as {
      resource: { terraform_data: { podnet_cluster: { for_each: Record<string, unknown> } } };
    };
    expect(Object.keys(tf.resource.terraform_data.podnet_cluster.for_each).sort()).toEqual(['master', 'node1', 'node2']);
    const manifest = JSON.parse(readFileSync(join(out, 'stacks', 'reference', 'assets', 'podnet-cluster', 'manifest.json'), 'utf8')) as {
      leases: Record<string, string>;
    };
    expect(manifest.leases).toEqual({ master: '10.244.0.0/24', node1: '10.244.1.0/24', node2: '10.244.2.0/24' });
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}, 120_000);
