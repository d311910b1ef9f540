// What plan, apply, drift and destroy share: options, the lab re-exec, the manifest, the
// SSH session and choosing nodes.
import type { Network, NetworkNode } from '../model';
import { EngineSession } from '../engine/session';
import { loadArtifacts, type ArtifactSet } from '../engine/artifacts';
import { parseCommandArgs, type OptionSpec } from './args';
import { CliError } from './cli-error';
import { labSshOverrides, reexecInLab } from './lab-context';
import { readManifestFile } from './manifest-file';

export const ENGINE_OPTIONS = {
  manifest: { type: 'string' },
  node: { type: 'string', multiple: true },
  lab: { type: 'string' },
  json: { type: 'boolean' },
  parallel: { type: 'string' },
  'accept-new-host-keys': { type: 'boolean' },
  'ssh-key': { type: 'string' },
  'known-hosts': { type: 'string' },
} as const satisfies OptionSpec;

export const ENGINE_USAGE = `  --manifest FILE         network manifest (default: the one under ./cdktf.out)
  --node NAME             only this node (repeatable)
  --lab NAME              reach hosts from lab NAME's workstation namespace, with its key and known_hosts
  --parallel N            hosts at a time (default 16)
  --ssh-key FILE          private key for every node (overrides the manifest and --lab)
  --known-hosts FILE      known_hosts for every node (overrides the manifest and --lab)
  --accept-new-host-keys  trust unknown host keys on first use and record them
  --json                  machine-readable output`;

export interface EngineContext {
  readonly session: EngineSession;
  readonly artifacts: ArtifactSet;
  readonly nodes: readonly NetworkNode[];
  readonly declared: Network;
  readonly json: boolean;
  readonly color: boolean;
}

export type OptionValues = Record<string, string | boolean | Array<string | boolean> | undefined>;

/**
 * Parses options, re-executes inside the lab's workstation namespace if --lab asks for it,
 * then runs `body` with a session that is always closed. Returns the exit code.
 */
export async function runEngineCommand<O extends OptionSpec>(
  argv: string[],
  extra: O,
  usage: string,
  body: (ctx: EngineContext, values: OptionValues) => Promise<number>,
): Promise<number> {
  const values = parseCommandArgs(argv, { ...ENGINE_OPTIONS, ...extra }, usage).values as OptionValues;
  if (values.help) {
    process.stdout.write(usage + '\n');
    return 0;
  }
  const lab = values.lab as string | undefined;
  if (lab) {
    const code = await reexecInLab(lab);
    if (code !== undefined) return code;
  }
  const { manifest } = readManifestFile(values.manifest as string | undefined);
  const parallel = values.parallel ? Number(values.parallel) : 16;
  if (!Number.isInteger(parallel) || parallel < 1) throw new CliError(`--parallel ${String(values.parallel)}: must be a whole number >= 1`);
  const session = new EngineSession(manifest, {
    ...labSshOverrides(lab),
    ...(values['ssh-key'] ? { privateKeyPath: values['ssh-key'] as string } : {}),
    ...(values['known-hosts'] ? { knownHostsPath: values['known-hosts'] as string } : {}),
    ...(values['accept-new-host-keys'] ? { acceptNewHostKeys: true } : {}),
  }, parallel);
  const declared = session.declaredNetwork();
  const wanted = (values.node as string[] | undefined) ?? [];
  for (const name of wanted) {
    if (!declared.nodes.some((n) => n.name === name)) throw new CliError(`node '${name}' is not in network '${declared.name}' (nodes: ${declared.nodes.map((n) => n.name).join(', ')})`);
  }
  const nodes = wanted.length ? declared.nodes.filter((n) => wanted.includes(n.name)) : declared.nodes;
  try {
    return await body({ session, artifacts: loadArtifacts(), nodes, declared, json: Boolean(values.json), color: process.stdout.isTTY === true }, values);
  } finally {
    await session.close();
  }
}
