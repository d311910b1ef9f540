// The CDKTF construct for a pod network: declares the nodes, validates the model at synth,
// writes the network manifest into the stack's output and one null_resource per node whose
// local-exec runs `podnet apply` (and, at destroy, `podnet destroy`) for that node.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Construct } from 'constructs';
import { Lazy, TerraformStack } from 'cdktf';
// Not re-exported by cdktf's index; TerraformAsset uses the same hook to copy files at synth.
import { addCustomSynthesis } from 'cdktf/lib/synthesize/synthesizer';
import { Resource as NullResource } from '@cdktf/provider-null/lib/resource';
import { NullProvider } from '@cdktf/provider-null/lib/provider';
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
}

/** Quotes one argument for the POSIX shell terraform's local-exec uses. */
function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export class PodNetwork extends Construct {
  private readonly props: PodNetworkProps;
  private readonly nodes: NodeSpec[] = [];
  /** Each node's apply and destroy commands (without the revision), part of its revision. */
  private readonly commands = new Map<string, string>();
  private readonly agentHash: string;
  /** Path of the manifest relative to the stack's working directory (where terraform runs). */
  readonly manifestPath: string;

  constructor(scope: Construct, id: string, props: PodNetworkProps) {
    super(scope, id);
    this.props = props;
    this.agentHash = props.agentFingerprint ?? agentFingerprint();
    this.manifestPath = `assets/podnet-${props.name}/manifest.json`;
    const stack = TerraformStack.of(this);
    if (!stack.node.tryFindChild('podnet-null-provider')) new NullProvider(stack, 'podnet-null-provider');

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
      ...(p.ssh !== undefined ? { ssh: p.ssh } : {}),
      ...(p.agentRuntime !== undefined ? { agentRuntime: p.agentRuntime } : {}),
      nodes: [...this.nodes],
    };
  }

  /** Synth-time manifest; throws the model's validation error when the network is invalid. */
  manifest(): NetworkManifest {
    return buildManifest(this.spec, this.props.leases ?? {});
  }

  /**
   * Declares a node and its null_resource. The triggers are computed at synth from the
   * node's desired host state and the agent, so they change exactly when either does.
   */
  addNode(node: NodeSpec): NullResource {
    this.nodes.push(node);
    const name = node.name;
    const revision = Lazy.stringValue({ produce: () => this.revisionOf(name) });
    const base = [this.props.podnetCommand ?? 'podnet'];
    const common = ['--manifest', this.manifestPath, '--node', name, ...(this.props.podnetArgs ?? [])];
    const applyCommand = [...base, 'apply', ...common, '--revision'].map(shellQuote).join(' ');
    // The destroy command names the host itself: when a node is removed from the model, the
    // manifest synth writes no longer lists it, but its old resource must still be destroyed.
    const ssh = { ...this.props.ssh, ...node.ssh };
    const destroyCommand = [
      ...base, 'destroy', '--network', this.props.name, '--node', name, '--address', node.address,
      '--ssh-user', ssh.user ?? 'root', '--ssh-port', String(ssh.port ?? 22),
      ...(ssh.privateKeyPath ? ['--ssh-key', ssh.privateKeyPath] : []),
      ...(ssh.knownHostsPath ? ['--known-hosts', ssh.knownHostsPath] : []),
      ...(this.props.podnetArgs ?? []), '--if-revision',
    ].map(shellQuote).join(' ');

    this.commands.set(name, `${applyCommand}\n${destroyCommand}`);
    return new NullResource(this, `node-${name}`, {
      triggers: {
        network: this.props.name,
        node: name,
        revision,
        agent: this.agentHash,
        manifest: this.manifestPath,
        destroy_command: Lazy.stringValue({ produce: () => `${destroyCommand} ${this.revisionOf(name)}` }),
      },
      // The new revision is applied before the old resource's destroy-time provisioner runs;
      // that provisioner then sees a newer revision on the host and leaves it alone, so a
      // change never tears a node's network down (only a removal does).
      lifecycle: { createBeforeDestroy: true },
      provisioners: [
        { type: 'local-exec', command: Lazy.stringValue({ produce: () => `${applyCommand} ${this.revisionOf(name)}` }) },
        { type: 'local-exec', when: 'destroy', command: '${self.triggers.destroy_command}' },
      ],
    });
  }

  /**
   * A short hash of everything in this node's triggers: its host state, the agent, and the
   * commands (SSH settings, podnet arguments). Any trigger change replaces the resource, and
   * the replacement must bring a new revision, or the old resource's destroy guard would
   * match the host and tear the node's network down.
   */
  revisionOf(node: string): string {
    const network = resolveManifest(this.manifest());
    const state = desiredHostState(network, node);
    return createHash('sha256')
      .update(JSON.stringify({ state, runtime: network.agentRuntime, agent: this.agentHash, commands: this.commands.get(node) }))
      .digest('hex')
      .slice(0, 16);
  }
}
