import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Testing, TerraformStack } from 'cdktf';
import { Resource as NullResource } from '@cdktf/provider-null/lib/resource';
import { NullProvider } from '@cdktf/provider-null/lib/provider';

// Registers cdktf's jest matchers (toHaveResource, ...); the type import brings their declarations.
import type {} from 'cdktf/lib/testing/adapters/jest';
Testing.setupJest();
import { PodNetwork, type PodNetworkProps } from '../../stacks';
import { parseManifest } from '../../src/model';
import { referenceSpec } from './reference-network';

const baseProps: PodNetworkProps = {
  name: 'cluster',
  clusterCidr: '10.244.0.0/16',
  backend: { type: 'ipip' },
  nodes: referenceSpec.nodes,
  agentFingerprint: 'agent-v1',
};

type Synth = { resource: { null_resource: Record<string, { triggers: Record<string, string>; provisioner: Array<Record<string, { command: string; when?: string }>>; lifecycle: unknown }> } };

function synth(props: Partial<PodNetworkProps> = {}): Synth {
  const stack = Testing.synthScope((scope) => {
    new PodNetwork(scope, 'net', { ...baseProps, ...props });
  });
  return JSON.parse(stack) as Synth;
}

function resourceFor(out: Synth, node: string) {
  const found = Object.values(out.resource.null_resource).find((r) => r.triggers.node === node);
  if (!found) throw new Error(`no resource for ${node}`);
  return found;
}

describe('PodNetwork construct', () => {
  it('synthesizes one null_resource per node', () => {
    const out = synth();
    expect(Object.keys(out.resource.null_resource)).toHaveLength(3);
    const stack = Testing.synthScope((scope) => new PodNetwork(scope, 'net', baseProps));
    expect(stack).toHaveResource(NullResource);
    expect(stack).toHaveProvider(NullProvider);
    expect(stack).toHaveResourceWithProperties(NullResource, { triggers: expect.objectContaining({ node: 'node1', network: 'cluster' }) });
  });

  it('runs podnet apply at create and a revision-guarded podnet destroy at destroy', () => {
    const r = resourceFor(synth({ podnetArgs: ['--lab', 'podnet'] }), 'node1');
    const revision = r.triggers.revision;
    expect(r.provisioner[0]!['local-exec']!.command).toBe(`podnet apply --manifest assets/podnet-cluster/manifest.json --node node1 --lab podnet --revision ${revision}`);
    expect(r.provisioner[1]!['local-exec']).toEqual({ command: '${self.triggers.destroy_command}', when: 'destroy' });
    expect(r.triggers.destroy_command).toBe(`podnet destroy --network cluster --node node1 --address 192.168.0.81 --ssh-user root --ssh-port 22 --lab podnet --if-revision ${revision}`);
    expect(r.lifecycle).toEqual({ create_before_destroy: true });
  });

  it("changes a node's trigger exactly when its desired state changes", () => {
    const before = synth();
    // A fourth node changes every existing node's routes (one more peer), so all revisions move.
    const added = synth({ nodes: [...referenceSpec.nodes, { name: 'node3', address: '192.168.0.83' }] });
    for (const n of ['master', 'node1', 'node2']) expect(resourceFor(added, n).triggers.revision).not.toBe(resourceFor(before, n).triggers.revision);
    // Re-synthesizing the same model gives the same triggers.
    const again = synth();
    for (const n of ['master', 'node1', 'node2']) expect(resourceFor(again, n).triggers).toEqual(resourceFor(before, n).triggers);
    // SSH settings change the destroy command (a trigger), so the revision must move too:
    // otherwise the replaced resource's destroy guard would match the host and tear it down.
    const ssh = synth({ nodes: referenceSpec.nodes.map((n) => (n.name === 'node1' ? { ...n, ssh: { port: 2222 } } : n)) });
    expect(resourceFor(ssh, 'node1').triggers.revision).not.toBe(resourceFor(before, 'node1').triggers.revision);
    expect(resourceFor(ssh, 'node2').triggers.revision).toBe(resourceFor(before, 'node2').triggers.revision);
    // A datapath override on node2 changes node2 only.
    const dp = synth({ nodes: referenceSpec.nodes.map((n) => (n.name === 'node2' ? { ...n, datapath: 'userspace' as const } : n)) });
    expect(resourceFor(dp, 'node2').triggers.revision).not.toBe(resourceFor(before, 'node2').triggers.revision);
    expect(resourceFor(dp, 'node1').triggers.revision).toBe(resourceFor(before, 'node1').triggers.revision);
  });

  it('changes every trigger when the agent changes', () => {
    const before = synth();
    const after = synth({ agentFingerprint: 'agent-v2' });
    for (const n of ['master', 'node1', 'node2']) {
      expect(resourceFor(after, n).triggers.agent).toBe('agent-v2');
      expect(resourceFor(after, n).triggers.revision).not.toBe(resourceFor(before, n).triggers.revision);
    }
  });

  it('fails synth with the model message naming the field', () => {
    const app = Testing.app();
    const stack = new TerraformStack(app, 'bad');
    new PodNetwork(stack, 'net', { ...baseProps, clusterCidr: '10.244.1.0/16' });
    expect(() => Testing.fullSynth(stack)).toThrow(/clusterCidr "10\.244\.1\.0\/16": has host bits set/);
  });

  it('addNode adds a resource and a manifest entry', () => {
    const stack = Testing.synthScope((scope) => {
      const net = new PodNetwork(scope, 'net', { ...baseProps, nodes: [] });
      net.addNode({ name: 'solo', address: '192.168.0.90' });
    });
    expect(Object.keys((JSON.parse(stack) as Synth).resource.null_resource)).toHaveLength(1);
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
