// The network manifest: what synth writes (and a GitOps repo may hold) and the engine reads.
// Versioned so that a newer podnet can refuse, with a clear message, what it does not know.
import type { NetworkSpec } from './spec';
import { resolveNetwork, type Network } from './network';
import { validateNetworkSpec } from './validate';
import { NetworkValidationError } from './validation-error';

export const MANIFEST_API_VERSION = 'podnet.dev/v1alpha1';

export interface NetworkManifest {
  readonly apiVersion: typeof MANIFEST_API_VERSION;
  readonly kind: 'NetworkManifest';
  /** The network as declared (nodes without podCidr are allocated). */
  readonly network: NetworkSpec;
  /** Subnets decided at synth (node -> CIDR). Leases read from hosts take precedence at plan. */
  readonly leases: Readonly<Record<string, string>>;
}

/** What the engine installs on each host as its agent config (host-layout.ts's agentConfigPath). */
export interface AgentConfig {
  readonly apiVersion: typeof MANIFEST_API_VERSION;
  readonly kind: 'AgentConfig';
  readonly node: string;
  /** The network with every node's podCidr pinned, so the agent allocates nothing. */
  readonly network: NetworkSpec;
}

export class ManifestError extends Error {
  override readonly name = 'ManifestError';
}

export function buildManifest(spec: NetworkSpec, leases: Readonly<Record<string, string>> = {}): NetworkManifest {
  const network = resolveNetwork(spec, leases);
  return {
    apiVersion: MANIFEST_API_VERSION,
    kind: 'NetworkManifest',
    network: spec,
    leases: Object.fromEntries(network.nodes.map((n) => [n.name, n.podCidr])),
  };
}

function checkEnvelope(value: unknown, kind: string, source: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null) throw new ManifestError(`${source}: not a JSON object`);
  const doc = value as Record<string, unknown>;
  if (doc.apiVersion !== MANIFEST_API_VERSION) {
    throw new ManifestError(
      `${source}: apiVersion ${JSON.stringify(doc.apiVersion)} is not supported (this podnet reads ${MANIFEST_API_VERSION})`,
    );
  }
  if (doc.kind !== kind) throw new ManifestError(`${source}: kind ${JSON.stringify(doc.kind)} is not ${kind}`);
  const problems = validateNetworkSpec(doc.network);
  if (problems.length > 0) {
    const err = new NetworkValidationError(problems.map((p) => ({ ...p, field: `network.${p.field}` })));
    throw new ManifestError(`${source}: ${err.message}`);
  }
  return doc;
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ManifestError(`${source}: not valid JSON (${(err as Error).message})`);
  }
}

export function parseManifest(text: string, source = 'manifest'): NetworkManifest {
  const doc = checkEnvelope(parseJson(text, source), 'NetworkManifest', source);
  const leases = doc.leases ?? {};
  if (typeof leases !== 'object' || leases === null || Object.values(leases).some((v) => typeof v !== 'string')) {
    throw new ManifestError(`${source}: leases must map node names to CIDR strings`);
  }
  return {
    apiVersion: MANIFEST_API_VERSION,
    kind: 'NetworkManifest',
    network: doc.network as NetworkSpec,
    leases: leases as Record<string, string>,
  };
}

export function parseAgentConfig(text: string, source = 'agent config'): AgentConfig {
  const doc = checkEnvelope(parseJson(text, source), 'AgentConfig', source);
  if (typeof doc.node !== 'string') throw new ManifestError(`${source}: node must be a string`);
  return { apiVersion: MANIFEST_API_VERSION, kind: 'AgentConfig', node: doc.node, network: doc.network as NetworkSpec };
}

/** Resolves a manifest, letting `hostLeases` (what hosts hold now) override synth-time leases. */
export function resolveManifest(manifest: NetworkManifest, hostLeases: Readonly<Record<string, string>> = {}): Network {
  return resolveNetwork(manifest.network, { ...manifest.leases, ...hostLeases });
}

export function renderAgentConfig(node: string, network: NetworkSpec): string {
  const config: AgentConfig = { apiVersion: MANIFEST_API_VERSION, kind: 'AgentConfig', node, network };
  return JSON.stringify(config, null, 2) + '\n';
}
