// What podnet ships to every host, as the build wrote it down: dist/agent/manifest.json lists
// each file of the agent (bundle, userspace worker, BPF loader and object, TUN shim) with its
// sha256 and mode. The engine uploads exactly these (by hash), drift compares them, and the
// construct's revision covers all of them, so a change to any shipped part (not only the JS
// bundle) is redeployed by the next `cdktf deploy`.
//
// Schema rule: AGENT_MANIFEST_SCHEMA changes when a field is removed or changes meaning.
import { createHash } from 'node:crypto';

export const AGENT_MANIFEST_SCHEMA = 'podnet.dev/agent-manifest/v1';
/** The manifest's name, beside the files it lists (dist/agent/). */
export const AGENT_MANIFEST_NAME = 'manifest.json';
/** The one file every build ships: the agent bundle itself. */
export const AGENT_BUNDLE_NAME = 'podnet-agent.js';

export interface ShippedFile {
  /** File name in dist/agent/ and in the host's install directory. */
  readonly name: string;
  /** Hex sha256 of the content. */
  readonly sha256: string;
  /** Unix permission bits on the host: 0o755 for executables, else 0o644. */
  readonly mode: 0o755 | 0o644;
}

export interface AgentManifest {
  readonly schema: typeof AGENT_MANIFEST_SCHEMA;
  /** package.json version and the bundle's build hash (what `podnet-agent --version` prints). */
  readonly version: string;
  readonly build: string;
  /** Sorted by name; the bundle is always among them. */
  readonly files: readonly ShippedFile[];
}

export class AgentManifestError extends Error {
  override readonly name = 'AgentManifestError';
}

/** Parses and checks a manifest's text. Throws AgentManifestError naming `where` and what is wrong. */
export function parseAgentManifest(text: string, where: string): AgentManifest {
  const fail = (what: string): never => {
    throw new AgentManifestError(`${where}: ${what}; run \`npm run build\``);
  };
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return fail('not JSON');
  }
  if (typeof v !== 'object' || v === null) return fail('not a JSON object');
  if (v.schema !== AGENT_MANIFEST_SCHEMA) return fail(`schema ${JSON.stringify(v.schema)}, expected ${AGENT_MANIFEST_SCHEMA}`);
  if (typeof v.version !== 'string' || typeof v.build !== 'string') return fail('version or build missing');
  if (!Array.isArray(v.files)) return fail('files is not a list');
  const files = (v.files as unknown[]).map((f, i): ShippedFile => {
    const e = f as Record<string, unknown>;
    if (typeof e.name !== 'string' || !/^[A-Za-z0-9._-]+$/.test(e.name)) return fail(`files[${i}].name is not a plain file name`);
    if (typeof e.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(e.sha256)) return fail(`files[${i}].sha256 is not a hex sha256`);
    if (e.mode !== 0o755 && e.mode !== 0o644) return fail(`files[${i}].mode is neither 0o755 nor 0o644`);
    return { name: e.name, sha256: e.sha256, mode: e.mode };
  });
  if (!files.some((f) => f.name === AGENT_BUNDLE_NAME)) return fail(`${AGENT_BUNDLE_NAME} is not listed`);
  return {
    schema: AGENT_MANIFEST_SCHEMA,
    version: v.version,
    build: v.build,
    files: [...files].sort((a, b) => a.name.localeCompare(b.name)),
  };
}

/**
 * One hash for everything shipped (16 hex digits): the construct's revision and the agent's
 * identity. Changes when any file's content, name or mode changes.
 */
export function agentIdentity(manifest: AgentManifest): string {
  const h = createHash('sha256');
  for (const f of manifest.files) h.update(`${f.name} ${f.mode.toString(8)} ${f.sha256}\n`);
  return h.digest('hex').slice(0, 16);
}
