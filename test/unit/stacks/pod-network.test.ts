import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, DataResource, Testing, TerraformStack } from 'cdktf';
import { Resource as NullResource } from '@cdktf/provider-null/lib/resource';
import { NullProvider } from '@cdktf/provider-null/lib/provider';

// Registers cdktf's jest matchers (toHaveResource, ...); the type import brings their declarations.
import type {} from 'cdktf/lib/testing/adapters/jest';
Testing.setupJest();
import { PodNetwork, terraformLiteral, type PodNetworkProps } from '../../../stacks';
import { parseManifest } from '../../../src/model';
import { referenceSpec } from '../reference-network';

const baseProps: PodNetworkProps = {
  name: 'cluster',
  clusterCidr: '10.244.0.0/16',
  backend: { type: 'ipip' },
  nodes: referenceSpec.nodes,
  agentFingerprint: 'agent-v1',
};

type Entry = { node: string; revision: string; agent: string; apply_command: string; destroy_command: string };
type Block = {
  for_each: Record<string, Entry>;
  triggers_replace?: Record<string, string>;
  triggers?: Record<string, string>;
  input?: Record<string, string>;
  provisioner: Array<Record<string, { command: string; when?: string }>>;
  lifecycle: unknown;
};
type Synth = { resource: Record<string, Record<string, Block>>; moved?: Array<{ from: string; to: string }>; provider?: unknown };

function synth(props: Partial<PodNetworkProps> = {}): Synth {
  const stack = Testing.synthScope((scope) => {
    new PodNetwork(scope, 'net', { ...baseProps, ...props });
  });
  return JSON.parse(stack) as Synth;
}

function entry(out: Synth, node: string, kind = 'terraform_data'): Entry {
  const found = out.resource[kind]!.podnet_cluster!.for_each[node];
  if (!found) throw new Error(`no instance for ${node}`);
  return found;
}

describe('PodNetwork construct', () => {
  it('synthesizes one terraform_data block with an instance per node, and no provider', () => {
    const out = synth();
    expect(Object.keys(out.resource)).toEqual(['terraform_data']);
    expect(Object.keys(out.resource.terraform_data!.podnet_cluster!.for_each)).toEqual(['master', 'node1', 'node2']);
    expect(out.provider).toBeUndefined();
    const stack = Testing.synthScope((scope) => new PodNetwork(scope, 'net', baseProps));
    expect(stack).toHaveResource(DataResource);
  });

  it('runs podnet apply at create and a guarded podnet destroy at destroy, keyed by the instance id', () => {
    const out = synth({ podnetArgs: ['--lab', 'podnet'] });
    const block = out.resource.terraform_data!.podnet_cluster!;
    expect(block.provisioner[0]!['local-exec']).toEqual({ command: '${each.value.apply_command} ${self.id}' });
    expect(block.provisioner[1]!['local-exec']).toEqual({ command: '${self.input.destroy_command} ${self.id}', when: 'destroy' });
    expect(block.triggers_replace).toEqual({
      network: 'cluster',
      node: '${each.key}',
      revision: '${each.value.revision}',
      agent: '${each.value.agent}',
    });
    expect(block.input).toEqual({ destroy_command: '${each.value.destroy_command}' });
    expect(block.lifecycle).toEqual({ create_before_destroy: true });
    const e = entry(out, 'node1');
    expect(e.apply_command).toBe(
      'podnet apply --manifest assets/podnet-cluster/manifest.json --node node1 --lab podnet --lock-timeout 5m --revision',
    );
    expect(e.destroy_command).toBe(
      'podnet destroy --network cluster --node node1 --address 192.168.0.81 --ssh-user root --ssh-port 22 --lab podnet --lock-timeout 5m --if-revision',
    );
    expect(entry(synth({ lockTimeout: '30s' }), 'node1').apply_command).toContain(' --lock-timeout 30s --revision');
  });

  it('synthesizes null_resource (with the null provider) when asked, same shape', () => {
    const out = synth({ resourceKind: 'null_resource' });
    expect(Object.keys(out.resource)).toEqual(['null_resource']);
    const block = out.resource.null_resource!.podnet_cluster!;
    expect(block.triggers).toMatchObject({
      node: '${each.key}',
      revision: '${each.value.revision}',
      destroy_command: '${each.value.destroy_command}',
    });
    expect(block.provisioner[1]!['local-exec']).toEqual({ command: '${self.triggers.destroy_command} ${self.id}', when: 'destroy' });
    expect(entry(out, 'node2', 'null_resource').revision).toBe(entry(synth(), 'node2').revision);
    const stack = Testing.synthScope((scope) => new PodNetwork(scope, 'net', { ...baseProps, resourceKind: 'null_resource' }));
    expect(stack).toHaveResource(NullResource);
    expect(stack).toHaveProvider(NullProvider);
  });

  it('moves null_resource to terraform_data with a moved block when asked', () => {
    expect(synth({ movedFromNullResource: true }).moved).toEqual([
      { from: 'null_resource.podnet_cluster', to: 'terraform_data.podnet_cluster' },
    ]);
    expect(synth().moved).toBeUndefined();
    expect(() => synth({ resourceKind: 'null_resource', movedFromNullResource: true })).toThrow(
      /movedFromNullResource needs resourceKind 'terraform_data'/,
    );
  });

  it("changes a node's revision exactly when its desired state changes, never for how it is reached", () => {
    const before = synth();
    // A fourth node changes every existing node's routes (one more peer), so all revisions move.
    const added = synth({ nodes: [...referenceSpec.nodes, { name: 'node3', address: '192.168.0.83' }] });
    for (const n of ['master', 'node1', 'node2']) expect(entry(added, n).revision).not.toBe(entry(before, n).revision);
    // Re-synthesizing the same model gives the same entries.
    const again = synth();
    for (const n of ['master', 'node1', 'node2']) expect(entry(again, n)).toEqual(entry(before, n));
    // SSH settings (another workstation's key, a port) change only the destroy command, which
    // lives in `input`: an in-place update that runs nothing on the host.
    const ssh = synth({
      ssh: { privateKeyPath: '/home/ci/key', knownHostsPath: '/home/ci/kh' },
      nodes: referenceSpec.nodes.map((n) => (n.name === 'node1' ? { ...n, ssh: { port: 2222 } } : n)),
    });
    for (const n of ['master', 'node1', 'node2']) expect(entry(ssh, n).revision).toBe(entry(before, n).revision);
    expect(entry(ssh, 'node1').destroy_command).toContain('--ssh-port 2222 --ssh-key /home/ci/key --known-hosts /home/ci/kh');
    // A datapath override on node2 changes node2 only.
    const dp = synth({ nodes: referenceSpec.nodes.map((n) => (n.name === 'node2' ? { ...n, datapath: 'userspace' as const } : n)) });
    expect(entry(dp, 'node2').revision).not.toBe(entry(before, 'node2').revision);
    expect(entry(dp, 'node1').revision).toBe(entry(before, 'node1').revision);
  });

  it('changes every revision when the agent changes', () => {
    const before = synth();
    const after = synth({ agentFingerprint: 'agent-v2' });
    for (const n of ['master', 'node1', 'node2']) {
      expect(entry(after, n).agent).toBe('agent-v2');
      expect(entry(after, n).revision).not.toBe(entry(before, n).revision);
    }
  });

  it("escapes Terraform template sequences in paths and podnet arguments (they reach the shell, not Terraform's evaluator)", () => {
    expect(terraformLiteral('/keys/${file("/etc/hostname")}/%{if x}')).toBe('/keys/$${file("/etc/hostname")}/%%{if x}');
    const out = synth({ ssh: { privateKeyPath: '/keys/${file("/etc/hostname")}' }, podnetArgs: ['--x', '%{ if true }'] });
    expect(entry(out, 'node1').destroy_command).toContain(
      `--ssh-key '/keys/$\${file("/etc/hostname")}' --x '%%{ if true }' --lock-timeout 5m`,
    );
    expect(entry(out, 'node1').apply_command).toContain(`--x '%%{ if true }'`);
  });

  it('fails synth with the model message naming the field', () => {
    const app = Testing.app();
    const stack = new TerraformStack(app, 'bad');
    new PodNetwork(stack, 'net', { ...baseProps, clusterCidr: '10.244.1.0/16' });
    expect(() => Testing.fullSynth(stack)).toThrow(/clusterCidr "10\.244\.1\.0\/16": has host bits set/);
  });

  it('addNode adds an instance and a manifest entry', () => {
    const stack = Testing.synthScope((scope) => {
      const net = new PodNetwork(scope, 'net', { ...baseProps, nodes: [] });
      net.addNode({ name: 'solo', address: '192.168.0.90' });
    });
    expect(Object.keys((JSON.parse(stack) as Synth).resource.terraform_data!.podnet_cluster!.for_each)).toEqual(['solo']);
  });

  it('writes the versioned manifest into the stack output at synth', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'podnet-synth-'));
    try {
      const app = new App({ outdir });
      const stack = new TerraformStack(app, 'ref');
      new PodNetwork(stack, 'net', baseProps);
      app.synth();
      const file = join(outdir, 'stacks', 'ref', 'assets', 'podnet-cluster', 'manifest.json');
      expect(existsSync(file)).toBe(true);
      const manifest = parseManifest(readFileSync(file, 'utf8'));
      expect(manifest.leases).toEqual({ master: '10.244.0.0/24', node1: '10.244.1.0/24', node2: '10.244.2.0/24' });
      expect(manifest.apiVersion).toBe('podnet.dev/v1alpha1');
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});
