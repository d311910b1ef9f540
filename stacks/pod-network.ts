// The CDKTF construct for a pod network: declares the nodes, validates the model at synth,
// writes the network manifest into the stack's output and ONE resource block for the network
// with one instance per node (`for_each` over the nodes). Each instance's local-exec runs
// `podnet apply` for its node at create, and `podnet destroy` for it at destroy.
//
// Why one for_each block and not one block per node: Terraform runs a destroy-time provisioner
// only while its resource block is still in the configuration. A node whose own block left
// the configuration would be deleted from the state without its teardown running; a key that
// leaves a for_each map is destroyed WITH the block's destroy provisioner. So a node removed
// from the construct is torn down by the deploy that removes it.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Construct } from 'constructs';
import { DataResource, Lazy, TerraformResource, TerraformStack } from 'cdktf';
// Not re-exported by cdktf's index; TerraformAsset uses the same hook to copy files at synth.
import { addCustomSynthesis } from 'cdktf/lib/synthesize/synthesizer';
import { Resource as NullResource } from '@cdktf/provider-null/lib/resource';
import { NullProvider } from '@cdktf/provider-null/lib/provider';
// terraform's local-exec runs the commands with /bin/sh.
import { shQuote } from '../src/host/shell-quote';
import {
  buildManifest,
  describeProblem,
  desiredHostState,
  resolveManifest,
  validateNetworkSpec,
  type AgentRuntimeChoice,
  type BackendSpec,
  type NetworkManifest,
  type NetworkSpec,
  type NodeSpec,
  type SshSpec,
  type UnderlaySpec,
} from '../src/model';
import { agentFingerprint } from './agent-fingerprint';

/**
 * The Terraform resource type each node is: `terraform_data` is built into Terraform (>= 1.4)
 * and needs no provider download; `null_resource` needs the hashicorp/null provider.
 */
export type NodeResourceKind = 'terraform_data' | 'null_resource';

export interface PodNetworkProps {
  /** Network name (DNS label); names the agent unit and config on each host. */
  readonly name: string;
  /** Cluster CIDR, e.g. 10.244.0.0/16. */
  readonly clusterCidr: string;
  /** Pod subnet length per node (default 24). */
  readonly subnetLength?: number;
  readonly subnetMin?: string;
  readonly subnetMax?: string;
  /** Default `{ type: 'ipip' }`. */
  readonly backend?: BackendSpec;
  /** Tunnel MTU (default underlay MTU - 20). */
  readonly mtu?: number;
  readonly underlay?: UnderlaySpec;
  /** Default true. */
  readonly ipMasq?: boolean;
  /** Where the CNI conflist goes on hosts (default `/etc/cni/net.d`). */
  readonly cniConfDir?: string;
  /** SSH defaults for every node. */
  readonly ssh?: SshSpec;
  /** Which Node.js runs the agent on hosts (default `auto`: the host's if recent enough, else shipped). */
  readonly agentRuntime?: AgentRuntimeChoice;
  readonly nodes?: readonly NodeSpec[];
  /** Subnets already handed out (node -> CIDR), e.g. from a committed lease file; kept stable. */
  readonly leases?: Readonly<Record<string, string>>;
  /** How terraform's local-exec runs podnet (default `podnet`). */
  readonly podnetCommand?: string;
  /** Extra arguments for every podnet call, e.g. `['--lab', 'podnet']`. */
  readonly podnetArgs?: readonly string[];
  /** Overrides the agent fingerprint in triggers (default: hash of the built agent bundle). */
  readonly agentFingerprint?: string;
  /**
   * How long each provisioner's podnet waits for a host locked by another apply or destroy
   * (`--lock-timeout`, default `5m`). Within one deploy two instances can meet on one host: a
   * node renamed (same address) is a destroy of the old name and a create of the new one, run in
   * parallel; waiting serializes them instead of failing the deploy.
   */
  readonly lockTimeout?: string;
  /** Default `terraform_data` (no provider download: works air-gapped). */
  readonly resourceKind?: NodeResourceKind;
  /**
   * Emit `moved { from = null_resource.<block>, to = terraform_data.<block> }` (Terraform >= 1.9)
   * so a network deployed with `resourceKind: 'null_resource'` switches to `terraform_data`
   * without its resources being planned as deleted. Only with `resourceKind: 'terraform_data'`.
   */
  readonly movedFromNullResource?: boolean;
}

/**
 * Escapes Terraform's template sequences: every string in a .tf.json file is a template, so a
 * literal `${` or `%{` (in a key path, a podnet argument) must reach Terraform as `$${` / `%%{`.
 */
export function terraformLiteral(text: string): string {
  return text.replace(/([$%])\{/g, (_m, sigil: string) => `${sigil}${sigil}{`);
}

/** One node's entry in the block's for_each map (every value a Terraform template-safe string). */
interface NodeEntry {
  readonly node: string;
  /** A hash of the node's desired host state and of the agent: a change replaces the instance. */
  readonly revision: string;
  readonly agent: string;
  /** `podnet apply ... --revision` (the instance's own id is appended). */
  readonly apply_command: string;
  /** `podnet destroy ... --if-revision` (the instance's own id is appended); needs no manifest. */
  readonly destroy_command: string;
}

export class PodNetwork extends Construct {
  private readonly props: PodNetworkProps;
  private readonly nodes: NodeSpec[] = [];
  private readonly agentHash: string;
  /** Path of the manifest relative to the stack's working directory (where terraform runs). */
  readonly manifestPath: string;
  /** The network's one resource block (`terraform_data.podnet_<name>` or `null_resource.podnet_<name>`). */
  readonly resource: TerraformResource;

  constructor(scope: Construct, id: string, props: PodNetworkProps) {
    super(scope, id);
    this.props = props;
    this.agentHash = props.agentFingerprint ?? agentFingerprint();
    this.manifestPath = `assets/podnet-${props.name}/manifest.json`;
    const stack = TerraformStack.of(this);
    const kind = props.resourceKind ?? 'terraform_data';
    if (props.movedFromNullResource && kind !== 'terraform_data')
      throw new Error(`podnet network '${props.name}': movedFromNullResource needs resourceKind 'terraform_data'`);

    this.node.addValidation({
      validate: () => validateNetworkSpec(this.spec).map((p) => `podnet network '${props.name}': ${describeProblem(p)}`),
    });
    addCustomSynthesis(this, {
      onSynthesize: (session) => {
        const stackDir = dirname(join(session.outdir, session.manifest.forStack(stack).synthesizedStackPath));
        const file = join(stackDir, this.manifestPath);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, JSON.stringify(this.manifest(), null, 2) + '\n');
      },
    });

    const entries = Lazy.anyValue({ produce: () => this.entries() });
    // Destroy provisioners may refer to `self` only: the command comes from the instance's state.
    // The guard token is the instance's own random id, not a content hash: `-replace` or any
    // recreation gets a new id, so an old instance's destroy never matches a re-applied host.
    const apply = { type: 'local-exec' as const, command: '${each.value.apply_command} ${self.id}' };
    if (kind === 'terraform_data') {
      this.resource = new DataResource(this, 'nodes', {
        // Replacing runs the create provisioner again: only what changes the host belongs here.
        triggersReplace: { network: props.name, node: '${each.key}', revision: '${each.value.revision}', agent: '${each.value.agent}' },
        // Changing `input` is an in-place update that runs nothing: SSH paths of whoever deployed
        // last (another workstation, a CI runner) never cause a host change.
        input: { destroy_command: '${each.value.destroy_command}' },
        lifecycle: { createBeforeDestroy: true },
        provisioners: [apply, { type: 'local-exec', when: 'destroy', command: '${self.input.destroy_command} ${self.id}' }],
      });
    } else {
      if (!stack.node.tryFindChild('podnet-null-provider')) new NullProvider(stack, 'podnet-null-provider');
      this.resource = new NullResource(this, 'nodes', {
        // null_resource has only `triggers` (strings, all forcing replacement): the destroy
        // command must live there, so a change of SSH paths replaces the instances (the new
        // apply finds nothing to change on the host).
        triggers: {
          network: props.name,
          node: '${each.key}',
          revision: '${each.value.revision}',
          agent: '${each.value.agent}',
          destroy_command: '${each.value.destroy_command}',
        },
        lifecycle: { createBeforeDestroy: true },
        provisioners: [apply, { type: 'local-exec', when: 'destroy', command: '${self.triggers.destroy_command} ${self.id}' }],
      });
    }
    this.resource.addOverride('for_each', entries);
    // A stable address users can type: `terraform apply -replace='terraform_data.podnet_cluster["node1"]'`.
    this.resource.overrideLogicalId(`podnet_${props.name}`);
    if (props.movedFromNullResource) this.resource.moveFromId(`null_resource.podnet_${props.name}`);
    for (const node of props.nodes ?? []) this.addNode(node);
  }

  /** The network as declared so far. */
  get spec(): NetworkSpec {
    const p = this.props;
    return {
      name: p.name,
      clusterCidr: p.clusterCidr,
      ...(p.subnetLength !== undefined ? { subnetLength: p.subnetLength } : {}),
      ...(p.subnetMin !== undefined ? { subnetMin: p.subnetMin } : {}),
      ...(p.subnetMax !== undefined ? { subnetMax: p.subnetMax } : {}),
      backend: p.backend ?? { type: 'ipip' },
      ...(p.mtu !== undefined ? { mtu: p.mtu } : {}),
      ...(p.underlay !== undefined ? { underlay: p.underlay } : {}),
      ...(p.ipMasq !== undefined ? { ipMasq: p.ipMasq } : {}),
      ...(p.cniConfDir !== undefined ? { cniConfDir: p.cniConfDir } : {}),
      ...(p.ssh !== undefined ? { ssh: p.ssh } : {}),
      ...(p.agentRuntime !== undefined ? { agentRuntime: p.agentRuntime } : {}),
      nodes: [...this.nodes],
    };
  }

  /** Synth-time manifest; throws the model's validation error when the network is invalid. */
  manifest(): NetworkManifest {
    return buildManifest(this.spec, this.props.leases ?? {});
  }

  /** Declares a node: one more instance of the network's resource block. */
  addNode(node: NodeSpec): void {
    this.nodes.push(node);
  }

  private commandsOf(node: NodeSpec): { apply: string; destroy: string } {
    const base = [this.props.podnetCommand ?? 'podnet'];
    const extra = [...(this.props.podnetArgs ?? []), '--lock-timeout', this.props.lockTimeout ?? '5m'];
    const apply = [...base, 'apply', '--manifest', this.manifestPath, '--node', node.name, ...extra, '--revision'];
    // The destroy command names the host itself: when a node is removed from the model, the
    // manifest synth writes no longer lists it, but its instance must still be destroyed.
    const ssh = { ...this.props.ssh, ...node.ssh };
    const destroy = [
      ...base,
      'destroy',
      '--network',
      this.props.name,
      '--node',
      node.name,
      '--address',
      node.address,
      '--ssh-user',
      ssh.user ?? 'root',
      '--ssh-port',
      String(ssh.port ?? 22),
      ...(ssh.privateKeyPath ? ['--ssh-key', ssh.privateKeyPath] : []),
      ...(ssh.knownHostsPath ? ['--known-hosts', ssh.knownHostsPath] : []),
      ...extra,
      '--if-revision',
    ];
    const render = (argv: string[]) => terraformLiteral(argv.map(shQuote).join(' '));
    return { apply: render(apply), destroy: render(destroy) };
  }

  private entries(): Record<string, NodeEntry> {
    const out: Record<string, NodeEntry> = {};
    for (const node of this.nodes) {
      const { apply, destroy } = this.commandsOf(node);
      out[node.name] = {
        node: node.name,
        revision: this.revisionOf(node.name),
        agent: this.agentHash,
        apply_command: apply,
        destroy_command: destroy,
      };
    }
    return out;
  }

  /**
   * A short hash of what this node's host should run: its desired host state, the runtime
   * policy and the agent. Nothing about how it is reached (SSH settings, podnet arguments):
   * host state is a function of the model alone.
   */
  revisionOf(node: string): string {
    const network = resolveManifest(this.manifest());
    const state = desiredHostState(network, node);
    return createHash('sha256')
      .update(JSON.stringify({ state, runtime: network.agentRuntime, agent: this.agentHash }))
      .digest('hex')
      .slice(0, 16);
  }
}
